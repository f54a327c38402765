"""The `medmat` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .readers import DEFAULT_MAX_PIXELS
from .registry import validate as validate_registry
from .registry.summary import source_row, subset_row

app = typer.Typer(help="Rebuild Med-MAT from its original sources.", no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)

ManifestsOpt = Annotated[
    Optional[Path], typer.Option("--manifests", help="manifests folder (default: the one shipped with medmat)")
]


def _load_or_exit(manifests: Path | None):
    registry, problems = validate_registry(manifests)
    if problems:
        err.print(f"[red]{len(problems)} problem(s) in the manifests; run `medmat validate` for details[/red]")
        raise typer.Exit(1)
    return registry


@app.command()
def validate(
    path: Annotated[Optional[Path], typer.Argument(help="manifests folder (default: the one shipped)")] = None,
) -> None:
    """Validate every manifest and cross-check them; exit 1 on any problem."""
    registry, problems = validate_registry(path)
    for problem in problems:
        typer.echo(str(problem), err=True)
    if problems:
        err.print(f"\n{len(problems)} problem(s) in {registry.root}", style="red")
        raise typer.Exit(1)
    console.print(
        f"ok: {len(registry.sources)} sources, {len(registry.subsets)} subsets, "
        f"{len(registry.licenses.licenses)} licenses in {registry.root}",
        highlight=False,
    )


@app.command("list")
def list_registry(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    manifests: ManifestsOpt = None,
) -> None:
    """List every source and subset with its triplet, access, license and task type."""
    reg = _load_or_exit(manifests)
    sources = [source_row(reg, s) for s in sorted(reg.sources, key=lambda s: reg.sources[s].upstream.row or 0)]
    subsets = [subset_row(reg, s) for s in sorted(reg.subsets)]
    if as_json:
        typer.echo(json.dumps({"sources": sources, "subsets": subsets}, indent=2))
        return
    table = Table(title=f"{len(subsets)} subsets", title_justify="left")
    for col in ("id", "modality", "area", "task", "type", "role", "sources", "access", "redistributable"):
        table.add_column(col)
    for s in subsets:
        table.add_row(s["id"], s["modality"], s["area"], f'{s["task"]} ({s["task_element"]})', s["task_type"],
                      s["role"], str(len(s["sources"])), ", ".join(s["access"]), _yes_no(s["redistributable"]))
    console.print(table)
    table = Table(title=f"{len(sources)} sources", title_justify="left")
    for col in ("row", "id", "subset", "triplet", "type", "access", "license", "redistributable", "images"):
        table.add_column(col)
    for s in sources:
        table.add_row(str(s["row"]), s["id"], s["subset"] or "-", f'{s["modality"]} / {s["area"]} / {s["task"]}',
                      s["task_type"], s["access"], s["license"], _yes_no(s["redistributable"]),
                      str(s["expected_count"] or "?"))
    console.print(table)


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="a source id (e.g. isic-2019), a subset number (e.g. 02) or a row (r57)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the whole manifest as JSON")] = False,
    manifests: ManifestsOpt = None,
) -> None:
    """Show one source or subset."""
    reg = _load_or_exit(manifests)
    key = name.strip()
    if key.isdigit() and key.zfill(2) in reg.subsets:
        model, row = reg.subsets[key.zfill(2)], subset_row(reg, key.zfill(2))
    elif key in reg.sources:
        model, row = reg.sources[key], source_row(reg, key)
    elif key.lower().startswith("r") and key[1:].isdigit():
        match = [s for s in reg.sources.values() if s.upstream.row == int(key[1:])]
        if not match:
            err.print(f"no source has upstream row {key[1:]}")
            raise typer.Exit(2)
        model, row = match[0], source_row(reg, match[0].id)
    else:
        err.print(f"{name!r} is neither a source id nor a subset number.\n"
                  f"subsets: {', '.join(sorted(reg.subsets))}\nsources: run `medmat list` to see all ids")
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(model.model_dump(mode="json"), indent=2))
        return
    table = Table(show_header=False, title=f"{row['kind']} {row['id']}", title_justify="left")
    for k, v in row.items():
        table.add_row(k, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
    console.print(table)
    if row["kind"] == "source":
        console.print("\n[bold]Citation[/bold]")
        console.print(model.citation, markup=False, highlight=False)
        for c in model.corrections:
            console.print(f"[yellow]correction[/yellow] {c.field}: {c.reason}", highlight=False)
    else:
        console.print("\n[bold]Instructions[/bold]")
        for i, text in enumerate(model.instructions, 1):
            console.print(f"{i}. {text}", markup=False, highlight=False)


@app.command()
def build(
    names: Annotated[list[str], typer.Argument(help="source ids, subset numbers (e.g. 02) or 'all'")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="folder holding DIR/<source-id>/ for each source")],
    out: Annotated[Path, typer.Option("--out", help="output folder: OUT/sources/<source-id>/ and OUT/hub/")],
    max_examples: Annotated[Optional[int], typer.Option(help="build at most N samples per source (smoke builds)")] = None,
    num_proc: Annotated[int, typer.Option(help="worker processes for decoding and hashing")] = 1,
    strict: Annotated[bool, typer.Option(help="stop at the first quarantined file")] = False,
    max_pixels: Annotated[int, typer.Option(help="refuse images with more pixels than this")] = DEFAULT_MAX_PIXELS,
    hub: Annotated[bool, typer.Option(help="also write OUT/hub/ (subsets, QA, splits, configs, card)")] = True,
    keep_pixels: Annotated[bool, typer.Option(help="keep pixels of non-redistributable sources (local use only)")] = False,
    seed: Annotated[int, typer.Option(help="seed of every random choice (splits, QA)")] = 42,
    repo: Annotated[str, typer.Option(help="repo id shown in the card's loading example")] = "<org>/Med-MAT",
    manifests: ManifestsOpt = None,
) -> None:
    """Build sources into the MAT schema (Parquet + report.json each), then the Hub folder of their subsets."""
    from .adapters import AdapterError
    from .build.source import BuildOptions, build_source
    from .build.writer import BuildError

    reg = _load_or_exit(manifests)
    source_ids, subset_ids = _resolve(reg, names)
    options = BuildOptions(max_examples=max_examples, num_proc=num_proc, strict=strict, max_pixels=max_pixels)
    failed = False
    for name in source_ids:
        if "all" in names and not (data_dir / name).is_dir():
            continue  # `all` builds what is present; `medmat doctor` lists what is missing
        try:
            report = build_source(reg, name, data_dir, out, options)
        except (AdapterError, BuildError) as exc:
            err.print(f"[red]{name}: {exc}[/red]", highlight=False)
            failed = True
            if strict:
                raise typer.Exit(1)
            continue
        typer.echo(f"{name}: {report['written']} written, {report['quarantined']} quarantined, "
                   f"{report['excluded']} excluded of {report['seen']} seen -> {Path(out) / 'sources' / name}")
        for reason, count in report["quarantine_reasons"].items():
            typer.echo(f"    quarantined {count} x {reason}")
    if hub:
        from .hub import build_hub

        contents = build_hub(reg, out, subset_ids, seed=seed, keep_pixels=keep_pixels, repo_id=repo)
        typer.echo(f"hub: {len(contents.configs)} configs -> {Path(out) / 'hub'}")
        for config in contents.configs:
            counts = ", ".join(f"{split} {n}" for split, n in config.num_examples.items())
            typer.echo(f"    {config.name}: {counts}")
    if failed:
        raise typer.Exit(1)


@app.command()
def example(
    out: Annotated[Path, typer.Option("--out", help="output folder (data/, sources/, hub/ go inside)")] = Path(
        "medmat-example"),
    num_proc: Annotated[int, typer.Option(help="worker processes")] = 1,
) -> None:
    """Build a small example end to end from real images shipped in installed packages, then load it back."""
    from datasets import load_dataset

    from .build.source import BuildOptions, build_source
    from .example import assemble
    from .hub import build_hub

    reg = _load_or_exit(None)
    data = out / "data"
    sources = assemble(data)
    for source_id in sources:
        report = build_source(reg, source_id, data, out, BuildOptions(num_proc=num_proc))
        typer.echo(f"{source_id}: {report['written']} written, {report['quarantined']} quarantined, "
                   f"{report['excluded']} excluded of {report['seen']} seen")
    subsets = sorted({s.id for source_id in sources for s in reg.subset_of(source_id)})
    # The example's pixels are the packages' own test images, which may be republished: keep them.
    contents = build_hub(reg, out, subsets, keep_pixels=True)
    typer.echo(f"\nhub: {out / 'hub'} with {len(contents.configs)} configs:")
    for config in contents.configs:
        typer.echo(f"    {config.name}: " + ", ".join(f"{k} {v}" for k, v in config.num_examples.items()))
    ds = load_dataset(str(out / "hub"), "subset-02")
    row = ds["train"][0]
    typer.echo(f"\nload_dataset({str(out / 'hub')!r}, 'subset-02') -> "
               + ", ".join(f"{k}: {len(v)} rows" for k, v in ds.items()))
    typer.echo(f"a sample ({row['id']}, image {row['image'].size[0]}x{row['image'].size[1]}):\n")
    typer.echo(row["question_choice"])
    typer.echo(f"answer: {row['answer_choice']} ({row['answer']})")
    typer.echo(f"\ndataset card: {out / 'hub' / 'README.md'} (figures in {out / 'hub' / 'assets'})")


def _resolve(reg, names: list[str]) -> tuple[list[str], list[str]]:
    """(source ids to build, subset ids to assemble) for `build` arguments."""
    sources, subsets = [], []
    for name in names:
        if name == "all":
            subsets += sorted(reg.subsets)
            sources += [s for sub in sorted(reg.subsets) for s in reg.subsets[sub].sources]
        elif name.isdigit() and name.zfill(2) in reg.subsets:
            subsets.append(name.zfill(2))
            sources += reg.subsets[name.zfill(2)].sources
        elif name in reg.sources:
            sources.append(name)
            subsets += [s.id for s in reg.subset_of(name)]
        else:
            err.print(f"unknown source id or subset {name!r}; run `medmat list` for the ids")
            raise typer.Exit(2)
    return list(dict.fromkeys(sources)), sorted(set(subsets))


@app.command()
def schema(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the JSON files")] = Path("docs/schema"),
) -> None:
    """Write JSON Schemas of the manifests (for editors) and of the MAT dataset features."""
    from .schema_export import write_schemas

    for path in write_schemas(out_dir):
        console.print(f"wrote {path}")


@app.command()
def errata(manifests: ManifestsOpt = None) -> None:
    """Print every upstream erratum the manifests correct, as a Markdown table (docs/errata.md)."""
    from .registry.errata import errata_markdown

    typer.echo(errata_markdown(_load_or_exit(manifests)), nl=False)


def _yes_no(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


from . import hub_commands  # noqa: E402  (upstream JSON export/import and publish; heavy imports stay lazy)

app.command("export")(hub_commands.export)
app.command("import-upstream")(hub_commands.import_upstream)
app.command("publish")(hub_commands.publish)

from .cg import cg_app  # noqa: E402  (CG experiments: `medmat cg list | show | related`)

app.add_typer(cg_app, name="cg")

from .train.cli import register as register_training  # noqa: E402  (`medmat train | eval | cg run`; torch lazily)

register_training(app)

from .download.cli import doctor_command, download_command  # noqa: E402

app.command("download")(download_command)
app.command("doctor")(doctor_command)


if __name__ == "__main__":
    app()
