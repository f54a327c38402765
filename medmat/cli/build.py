"""`medmat build` and `medmat example`: thin wrappers over `medmat.pipeline`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..readers.limits import DEFAULT_MAX_BYTES
from .common import ManifestsOpt, err, load_registry_or_exit
from .download import LayoutRootOpt, parse_layout_roots

def build_command(
    names: Annotated[list[str], typer.Argument(help="source ids, subset numbers (e.g. 02) or 'all'")],
    data_dir: Annotated[Optional[str], typer.Option(
        "--data-dir", help="folder (or s3://... URL) holding DIR/<source-id>/ for each source (not needed with "
                           "--hub-only)")] = None,
    out: Annotated[str, typer.Option("--out", help="output folder (or URL): OUT/sources/<source-id>/ and OUT/hub/")] = ...,
    max_examples: Annotated[Optional[int], typer.Option(help="build at most N samples per source (smoke builds)")] = None,
    num_proc: Annotated[int, typer.Option(help="worker processes for decoding and hashing, then for the hub's subsets "
                                               "(one task each)")] = 1,
    strict: Annotated[bool, typer.Option(help="stop at the first quarantined file")] = False,
    max_bytes: Annotated[int, typer.Option(
        help="refuse a sample whose file, or whose decoded size (elements x 8 bytes), is larger than this; holds in "
             "every worker", min=1)] = DEFAULT_MAX_BYTES,
    max_pixels: Annotated[Optional[int], typer.Option(hidden=True, help="replaced by --max-bytes")] = None,
    hub: Annotated[bool, typer.Option(help="also write OUT/hub/ (subsets, QA, splits, configs, card)")] = True,
    publishable: Annotated[bool, typer.Option(
        help="write a hub folder `medmat publish` accepts: leave out (and mark per row) the pixels and montage images "
             "of sources whose licenses forbid republishing them; needs --repo. Default: a local build with every "
             "pixel you downloaded")] = False,
    figures: Annotated[Optional[bool], typer.Option(
        "--figures/--no-figures",
        help="draw the card's MAT coverage grid and sample montages (OUT/hub/assets/; about half the hub stage's "
             "time). Default: same as --publishable")] = None,
    seed: Annotated[int, typer.Option(help="seed of every random choice (splits, QA)")] = 42,
    repo: Annotated[Optional[str], typer.Option(help="repo id <org>/<name> the card and croissant.json name")] = None,
    hub_only: Annotated[bool, typer.Option(
        help="only (re)write OUT/hub/ from the sources already built in OUT/sources/, e.g. a --publishable hub after "
             "a local build")] = False,
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

    from ..pipeline import OutProblem
    from ..prepare.atomic import OutLocked, disk_problem

    if max_pixels is not None:
        err.print("--max-pixels was replaced by --max-bytes: a limit in bytes per sample (elements x 8 bytes of "
                  f"working memory; default {DEFAULT_MAX_BYTES:,}), e.g. --max-bytes {max_pixels * 8}",
                  markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if publishable and not repo:
        err.print("--publishable needs --repo ORG/NAME: the card's example and croissant.json name the repo",
                  markup=False, highlight=False)
        raise typer.Exit(2)
    if data_dir is None and not hub_only:
        err.print("--data-dir is needed to build sources (or pass --hub-only to reassemble OUT/hub from OUT/sources)",
                  markup=False, highlight=False)
        raise typer.Exit(2)
    if engine not in ("local", "ray"):
        err.print(f"unknown engine {engine!r}: choose local or ray")
        raise typer.Exit(2)
    from ..storage import is_url

    reg = load_registry_or_exit(manifests, cg=hub or hub_only)  # CG manifests feed only the hub's CG configs
    try:
        source_ids, subset_ids = resolve(reg, names)
    except SelectionError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    if hub_only:
        from ..hub import build_hub

        _print_hub(build_hub(reg, Path(out), subset_ids, seed=seed, publishable=publishable, repo_id=repo,
                             figures=publishable if figures is None else figures),
                   Path(out) / "hub")
        return
    roots = parse_layout_roots(layout_root, list(source_ids)) if layout_root else {}
    options = BuildOptions(max_examples=max_examples, num_proc=num_proc, strict=strict, max_bytes=max_bytes,
                           engine=engine, ray_address=ray_address)
    data_dir = data_dir if is_url(data_dir) else Path(data_dir)
    out = out if is_url(out) else Path(out)
    try:
        result = build(reg, names, data_dir, out, options, hub=hub, seed=seed, publishable=publishable,
                       repo_id=repo, figures=figures, on_source=_print_source(out), layout_roots=roots)
    except SelectionError as exc:
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except (OutLocked, OutProblem) as exc:
        err.print(str(exc), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print(f"interrupted: sources finished before the interruption are complete under {Path(out) / 'sources'}; "
                  "the one in progress and the hub folder were left as they were before this run; run the same "
                  "command again to finish", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except OSError as exc:
        err.print(disk_problem(exc) or f"cannot read or write {exc.filename}: {exc.strerror}", markup=False,
                  highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if result.hub is not None:
        _print_hub(result.hub, f"{str(out).rstrip('/')}/hub")
    if result.failures:
        sources = [name for name in result.failures if name != "hub"]
        parts = [f"{len(sources)} source(s) failed: {', '.join(sources)}"] if sources else []
        parts += ["the hub folder was not updated"] if "hub" in result.failures else []
        err.print("; ".join(parts) + f"; {len(result.reports)} source(s) built", markup=False, highlight=False,
                  soft_wrap=True)
        raise typer.Exit(1)


def _print_source(out):
    def show(name: str, report: dict | None, error: str | None) -> None:
        if error is not None:
            err.print(f"{name}: {error}", markup=False, highlight=False, soft_wrap=True)
            return
        typer.echo(f"{name}: {report['written']} written, {report['quarantined']} quarantined, "
                   f"{report['excluded']} excluded of {report['seen']} seen -> {str(out).rstrip('/')}/sources/{name}")
        for reason, count in report["quarantine_reasons"].items():
            typer.echo(f"    quarantined {count} x {reason}")
    return show


def _print_hub(contents, folder) -> None:
    typer.echo(f"hub: {len(contents.configs)} configs -> {folder}")
    if contents.publishable:
        typer.echo(f"    publishable: pixels left out of {sum(contents.restricted.values())} rows of "
                   f"{len(contents.restricted)} non-redistributable source(s) (column pixels_withheld)")
    else:
        typer.echo(f"    local build: every downloaded pixel is kept, also those of {len(contents.restricted)} "
                   "non-redistributable source(s); `medmat publish` needs a --publishable build")
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
