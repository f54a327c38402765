"""What every command group shares: the consoles, the --manifests option and "load the registry or exit"."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)

ManifestsOpt = Annotated[
    Optional[Path], typer.Option("--manifests", help="manifests folder (default: the one shipped with medmat)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def load_registry_or_exit(manifests: Path | None, cg: bool = True):
    """The validated registry; exit 1 with a pointer to `medmat validate` when any manifest has a problem.
    `cg=False`: the command never reads the CG manifests, so they are not checked (`medmat validate` does)."""
    from ..validation import validate

    registry, problems = validate(manifests, cg=cg)
    if problems:
        err.print(f"[red]{len(problems)} problem(s) in the manifests; run `medmat validate` for details[/red]")
        raise typer.Exit(1)
    return registry


def load_experiments_or_exit(manifests: Path | None):
    """The validated registry and CG set, or exit 1."""
    from ..registry.cg_models import CGError
    from ..validation import load_experiments

    try:
        return load_experiments(manifests)
    except CGError as exc:
        typer.echo(f"{str(exc).splitlines()[0]}; run `medmat validate` for details", err=True)
        raise typer.Exit(1) from None


def yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")
