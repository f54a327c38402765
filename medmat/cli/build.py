"""`medmat build` and `medmat example`: thin wrappers over `medmat.pipeline`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..readers.base import DEFAULT_MAX_PIXELS
from .common import ManifestsOpt, err, load_registry_or_exit
from .download import LayoutRootOpt, parse_layout_roots

def build_command(
    names: Annotated[list[str], typer.Argument(help="source ids, subset numbers (e.g. 02) or 'all'")],
    data_dir: Annotated[str, typer.Option("--data-dir", help="folder (or s3://... URL) holding DIR/<source-id>/ for "
                                          "each source")],
    out: Annotated[str, typer.Option("--out", help="output folder (or URL): OUT/sources/<source-id>/ and OUT/hub/")],
    max_examples: Annotated[Optional[int], typer.Option(help="build at most N samples per source (smoke builds)")] = None,
    num_proc: Annotated[int, typer.Option(help="worker processes for decoding and hashing")] = 1,
    strict: Annotated[bool, typer.Option(help="stop at the first quarantined file")] = False,
    max_pixels: Annotated[int, typer.Option(help="refuse images with more pixels than this")] = DEFAULT_MAX_PIXELS,
    hub: Annotated[bool, typer.Option(help="also write OUT/hub/ (subsets, QA, splits, configs, card)")] = True,
    keep_pixels: Annotated[bool, typer.Option(help="keep pixels of non-redistributable sources (local use only)")] = False,
    seed: Annotated[int, typer.Option(help="seed of every random choice (splits, QA)")] = 42,
    repo: Annotated[str, typer.Option(help="repo id shown in the card's loading example")] = "<org>/Med-MAT",
    engine: Annotated[str, typer.Option(help="where the per-item work runs: local (processes here) or ray "
                                        "(a Ray cluster; `pip install 'medmat[ray]'`)")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(help="Ray cluster to join (host:port or auto); default: "
                                                       "start a local one")] = None,
    layout_root: LayoutRootOpt = None,
    manifests: ManifestsOpt = None,
) -> None:
    """Build sources into the MAT schema (Parquet + report.json each), then the Hub folder of their subsets."""
    from ..pipeline import SelectionError, build, resolve
    from ..prepare.source import BuildOptions

    reg = load_registry_or_exit(manifests)
    roots: dict[str, str] = {}
    if layout_root:
        try:
            ids, _ = resolve(reg, names)
        except SelectionError as exc:
            err.print(str(exc), markup=False, highlight=False)
            raise typer.Exit(2) from None
        roots = parse_layout_roots(layout_root, list(ids))
    if engine not in ("local", "ray"):
        err.print(f"unknown engine {engine!r}: choose local or ray")
        raise typer.Exit(2)
    options = BuildOptions(max_examples=max_examples, num_proc=num_proc, strict=strict, max_pixels=max_pixels,
                           engine=engine, ray_address=ray_address)
    from ..storage import is_url

    data_dir = data_dir if is_url(data_dir) else Path(data_dir)
    out = out if is_url(out) else Path(out)
    try:
        result = build(reg, names, data_dir, out, options, hub=hub, seed=seed, keep_pixels=keep_pixels,
                       repo_id=repo, on_source=_print_source(out), layout_roots=roots)
    except SelectionError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    if result.hub is not None:
        _print_hub(result.hub, f"{str(out).rstrip('/')}/hub")
    if result.failures:
        err.print(f"[red]{len(result.failures)} source(s) failed: {', '.join(result.failures)}[/red]", highlight=False)
        raise typer.Exit(1)


def _print_source(out):
    def show(name: str, report: dict | None, error: str | None) -> None:
        if error is not None:
            err.print(f"[red]{name}: {error}[/red]", highlight=False)
            return
        typer.echo(f"{name}: {report['written']} written, {report['quarantined']} quarantined, "
                   f"{report['excluded']} excluded of {report['seen']} seen -> {str(out).rstrip('/')}/sources/{name}")
        for reason, count in report["quarantine_reasons"].items():
            typer.echo(f"    quarantined {count} x {reason}")
    return show


def _print_hub(contents, folder) -> None:
    typer.echo(f"hub: {len(contents.configs)} configs -> {folder}")
    for config in contents.configs:
        counts = ", ".join(f"{split} {n}" for split, n in config.num_examples.items())
        typer.echo(f"    {config.name}: {counts}")


def example_command(
    out: Annotated[Path, typer.Option("--out", help="output folder (data/, sources/, hub/ go inside)")] = Path(
        "medmat-example"),
    num_proc: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Build a small example end to end from real images shipped in installed packages, then load it back."""
    from datasets import load_dataset

    from ..pipeline import example

    reg = load_registry_or_exit(None)
    result = example(reg, out, num_proc=num_proc, on_source=_print_source(out))
    typer.echo("")
    _print_hub(result.hub, out / "hub")
    ds = load_dataset(str(out / "hub"), "subset-02")
    row = ds["train"][0]
    typer.echo(f"\nload_dataset({str(out / 'hub')!r}, 'subset-02') -> "
               + ", ".join(f"{k}: {len(v)} rows" for k, v in ds.items()))
    typer.echo(f"a sample ({row['id']}, image {row['image'].size[0]}x{row['image'].size[1]}):\n")
    typer.echo(row["question_choice"])
    typer.echo(f"answer: {row['answer_choice']} ({row['answer']})")
    typer.echo(f"\ndataset card: {out / 'hub' / 'README.md'} (figures in {out / 'hub' / 'assets'})")




def register(app: typer.Typer) -> None:
    app.command("build")(build_command)
    app.command("example")(example_command)
