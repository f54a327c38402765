"""The `medmat` command line: thin wrappers that parse arguments, call one library function and map errors to
exit codes. One module per command group; each imports its library code inside the command, so `medmat --help`
imports no image or ML library."""

from __future__ import annotations

import typer

from . import build, download, hub, registry
from .cg import cg_app

app = typer.Typer(help="Rebuild Med-MAT from its original sources.", no_args_is_help=True, add_completion=False)
registry.register(app)
build.register(app)
download.register(app)
hub.register(app)
app.add_typer(cg_app, name="cg")


def _register_training() -> None:
    from ..train.cli import register  # `medmat train | eval | cg run`; torch is imported only when they run

    register(app)


_register_training()

__all__ = ["app"]
