"""CLI commands for the upstream JSON format (`export`, `import-upstream`) and for `publish`.

Heavy imports (huggingface_hub, pyarrow) happen only when a command runs.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import console, err



class ExportFormat(str, Enum):
    medmat_json = "medmat-json"


class ExportKind(str, Enum):
    auto = "auto"
    subset = "subset"
    ori = "ori"


def export(
    inputs: Annotated[list[Path], typer.Argument(help="Parquet files or folders of built tables, or one hub folder")],
    out: Annotated[Path, typer.Option("--out", help="folder for the JSON files")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="output format")] = ExportFormat.medmat_json,
    config: Annotated[Optional[str], typer.Option(help="config of the hub folder (e.g. subset-02-paper)")] = None,
    kind: Annotated[ExportKind, typer.Option(
        "--as", help="write Subset--NN-<split>.json per subset and split, or ori--NN-train.json per source row; "
                     "auto: ori for a source-<id> config, else subset")] = ExportKind.auto,
) -> None:
    """Write built rows as upstream Med-MAT JSON files (upstream field names and types)."""
    from ..hub.upstream_json import UpstreamError, export_upstream

    try:
        counts = export_upstream(inputs, out, config=config, kind=kind.value)
    except UpstreamError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False)
        raise typer.Exit(1) from None
    for name, n in counts.items():
        typer.echo(f"{out / name}: {n} records")


def import_upstream(
    files: Annotated[list[Path], typer.Argument(help="upstream JSON files, or folders holding them")],
    built: Annotated[list[Path], typer.Option("--built", help="built Parquet files/folders, or one hub folder")],
    config: Annotated[Optional[str], typer.Option(help="config of the hub folder to match against")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="write the record->sample mapping (JSONL)")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="count invalid records instead of stopping at them")] = False,
) -> None:
    """Validate upstream JSON files and map their records onto built samples (by data-no + image path)."""
    from ..hub.upstream_json import UpstreamError, import_upstream as run, write_mapping

    try:
        report = run(files, built, config=config, skip_invalid=skip_invalid)
    except UpstreamError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False)
        raise typer.Exit(1) from None
    table = Table(title="upstream records mapped onto built samples", title_justify="left")
    for col in ("file", "kind", "number", "split", "records", "matched", "unmatched", "invalid"):
        table.add_column(col)
    for f in report.files:
        table.add_row(f.file, f.kind, f.number, f.split, str(f.records), str(f.matched), str(f.unmatched),
                      str(f.invalid))
    console.print(table)
    console.print(f"matched {report.matched}, unmatched {report.unmatched}, invalid {report.invalid}",
                  highlight=False)
    for problem in report.problems:
        err.print(problem, highlight=False, markup=False)
    if out is not None:
        write_mapping(report, out)
        console.print(f"wrote {out}", highlight=False)


def publish(
    folder: Annotated[Path, typer.Argument(help="the hub folder written by `medmat build` (OUT/hub)")],
    repo: Annotated[str, typer.Option("--repo", help="target dataset repo, <org>/<name>")],
    private: Annotated[bool, typer.Option("--private", help="create the repo private (if it does not exist)")] = False,
    revision: Annotated[Optional[str], typer.Option(help="branch to commit to (created if missing)")] = None,
    message: Annotated[Optional[str], typer.Option("--message", help="commit message")] = None,
) -> None:
    """Upload a hub folder to a Hugging Face dataset repo (resumable: re-run to resume).

    The token comes from HF_TOKEN or the standard `hf auth login`; it is never printed.
    """
    from ..hub.publish import PublishError, publish as run, redact

    try:
        result = run(folder, repo, private=private, revision=revision, commit_message=message)
    except PublishError as exc:
        err.print(str(exc), style="red", highlight=False, markup=False)
        raise typer.Exit(1) from None
    except Exception as exc:  # anything unexpected: one redacted line, no traceback with request headers
        from huggingface_hub import get_token

        err.print(redact(f"publish failed: {type(exc).__name__}: {exc}", get_token()), style="red",
                  highlight=False, markup=False)
        raise typer.Exit(1) from None
    console.print(f"published {result.files} files to {result.repo_url} ({result.revision}): {result.commit_url}",
                  highlight=False)
    console.print(f"configs: {', '.join(result.configs)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import-upstream")(import_upstream)
    app.command("publish")(publish)
