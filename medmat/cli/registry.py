"""`medmat validate | list | info | schema | errata`: the registry as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.table import Table

from .common import ManifestsOpt, console, err, load_registry_or_exit, yes_no

def validate_command(
    path: Annotated[Optional[Path], typer.Argument(help="manifests folder (default: the one shipped)")] = None,
    hub: Annotated[Optional[Path], typer.Option(help="also check every question of a built hub folder (OUT/hub) "
                                                     "for option sets that could hold two right answers")] = None,
) -> None:
    """Validate every manifest and cross-check them; exit 1 on any problem."""
    from ..validation import check_hub_options, validate as validate_manifests

    registry, problems = validate_manifests(path)
    if hub is not None:
        problems += check_hub_options(registry, hub)
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


def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    manifests: ManifestsOpt = None,
) -> None:
    """List every source and subset with its triplet, access, license and task type."""
    from ..registry.summary import source_row, subset_row

    reg = load_registry_or_exit(manifests)
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
                      s["role"], str(len(s["sources"])), ", ".join(s["access"]), yes_no(s["redistributable"]))
    console.print(table)
    table = Table(title=f"{len(sources)} sources", title_justify="left")
    for col in ("row", "id", "subset", "triplet", "type", "access", "license", "redistributable", "images",
                "confirmed"):
        table.add_column(col)
    for s in sources:
        table.add_row(str(s["row"]), s["id"], s["subset"] or "-", f'{s["modality"]} / {s["area"]} / {s["task"]}',
                      s["task_type"], s["access"], s["license"], yes_no(s["redistributable"]),
                      str(s["expected_count"] or "?"), _confirmed(s["evidence"]))
    console.print(table)
    totals = {k: sum(s["evidence"][k] for s in sources) for k in sources[0]["evidence"]} if sources else {}
    without = sum(1 for s in sources if not s["evidence"]["total"])
    console.print("evidence (layout facts): " + ", ".join(f"{n} {k}" for k, n in totals.items() if k != "total")
                  + f"; {without} source(s) without an evidence block", highlight=False)


def _confirmed(counts: dict[str, int]) -> str:
    """'7/9' = 7 of the source's 9 layout facts confirmed; '-' = no evidence block yet."""
    return f'{counts["confirmed"]}/{counts["total"]}' if counts["total"] else "-"


def info_command(
    name: Annotated[str, typer.Argument(help="a source id (e.g. isic-2019), a subset number (e.g. 02) or a row (r57)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the whole manifest as JSON")] = False,
    manifests: ManifestsOpt = None,
    hub: Annotated[Optional[Path], typer.Option(help="a built hub folder (OUT/hub): show a subset's split statistics "
                                                     "from its split_stats.json")] = None,
) -> None:
    """Show one source or subset."""
    from ..registry.summary import source_row, subset_row

    reg = load_registry_or_exit(manifests)
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
        if isinstance(v, dict):
            v = [f"{n} {name}" for name, n in v.items()]
        table.add_row(k, ", ".join(map(str, v)) if isinstance(v, list) else str(v))
    console.print(table)
    if row["kind"] == "source":
        console.print("\n[bold]Citation[/bold]")
        console.print(model.citation, markup=False, highlight=False)
        for c in model.corrections:
            console.print(f"[yellow]correction[/yellow] {c.field}: {c.reason}", highlight=False)
        _print_evidence(model)
    else:
        console.print("\n[bold]Instructions[/bold]")
        for i, text in enumerate(model.instructions, 1):
            console.print(f"{i}. {text}", markup=False, highlight=False)
        _print_split_stats(model.id, hub)


def _print_split_stats(subset_id: str, hub: Path | None) -> None:
    """The subset's split statistics from a built hub (medmat.mat.splits.split_statistics), if there is one."""
    from ..mat.split_report import split_stats_lines

    path = (hub / "split_stats.json") if hub else None
    if path is None or not path.is_file():
        console.print(f"\n(no split statistics: build the hub, then `medmat info {subset_id} --hub OUT/hub`)",
                      markup=False, highlight=False)
        return
    stats = json.loads(path.read_text(encoding="utf-8")).get(subset_id)
    if stats is None:
        console.print(f"\n(subset {subset_id} is not in {path})", markup=False, highlight=False)
        return
    console.print(f"\n[bold]Splits[/bold] ({path})")
    for line in split_stats_lines(stats):
        console.print(line, markup=False, highlight=False)


def _print_evidence(model) -> None:
    from ..registry.summary import evidence_rows

    rows = evidence_rows(model)
    if not rows:
        console.print("\n[yellow]no evidence block[/yellow]: no layout fact is cited (see docs/maintainers.md)",
                      highlight=False)
        return
    counts = ", ".join(f"{sum(r['strength'] == k for r in rows)} {k}"
                       for k in ("confirmed", "folder-level", "inferred", "unverified"))
    console.print(f"\n[bold]Evidence[/bold] ({len(rows)} layout facts: {counts})", highlight=False)
    for r in rows:
        console.print(f"- [{r['strength']}] {r['fact']}: {r['claim']}", markup=False, highlight=False)
        console.print(f"    where: {r['where']}", markup=False, highlight=False)
        if r["shows"]:
            console.print(f"    shows: {r['shows']}", markup=False, highlight=False)


def schema_command(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the JSON files")] = Path("docs/schema"),
) -> None:
    """Write JSON Schemas of the manifests (for editors) and of the MAT dataset features."""
    from ..reference_docs import write_schemas

    for path in write_schemas(out_dir):
        console.print(f"wrote {path}")


def errata_command(manifests: ManifestsOpt = None) -> None:
    """Print every upstream erratum the manifests correct, as a Markdown table (docs/errata.md)."""
    from ..registry.errata import errata_markdown

    typer.echo(errata_markdown(load_registry_or_exit(manifests)), nl=False)




def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.command("list")(list_command)
    app.command("info")(info_command)
    app.command("schema")(schema_command)
    app.command("errata")(errata_command)
