"""`medmat download` and `medmat doctor`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import ManifestsOpt, console, err, load_registry_or_exit


NamesArg = Annotated[list[str], typer.Argument(help="source ids, subset numbers (e.g. 02) or `all`")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="folder holding DIR/<source-id>/ for each source")]
LayoutRootOpt = Annotated[Optional[list[str]], typer.Option(
    "--layout-root", help="SOURCE=PATH (or PATH when one source is named): read that source's tree from "
    "DIR/<source-id>/PATH instead of the manifest's layout.root ('.' = the source folder); repeatable. "
    "`medmat doctor` prints the value that fixes a layout drift")]


def parse_layout_roots(values: list[str] | None, ids: list[str]) -> dict[str, str]:
    """`--layout-root` values -> {source id: root}; exits 2 with the reason on a bad value."""
    found: dict[str, str] = {}
    for value in values or []:
        sid, sep, root = value.partition("=")
        if not sep:
            if len(ids) != 1:
                err.print(f"--layout-root {value!r}: name the source (SOURCE=PATH) when several are selected",
                          markup=False, highlight=False)
                raise typer.Exit(2)
            sid, root = ids[0], value
        if sid not in ids:
            err.print(f"--layout-root {value!r}: {sid!r} is not among the selected sources {ids}", markup=False,
                      highlight=False)
            raise typer.Exit(2)
        if ".." in root.replace("\\", "/").split("/") or root.startswith("/"):
            err.print(f"--layout-root {value!r}: the path must be relative and stay inside DIR/{sid}/",
                      markup=False, highlight=False)
            raise typer.Exit(2)
        found[sid] = root
    return found


def _selection(names: list[str], manifests: Path | None):
    from ..download.layout import SelectionError, select_sources

    registry = load_registry_or_exit(manifests)
    try:
        return registry, select_sources(registry, names)
    except SelectionError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None


def download_command(
    names: NamesArg,
    data_dir: DataDirOpt,
    register_checksums: Annotated[bool, typer.Option(
        "--register-checksums", help="write sizes and sha256 of verified downloads into the manifests (review "
        "the printed diff)")] = False,
    allow_host: Annotated[Optional[list[str]], typer.Option(
        "--allow-host", help="also allow this host (a redirect target the manifest does not name); repeatable")] = None,
    retries: Annotated[int, typer.Option(help="tries per address before the next mirror", min=1)] = 5,
    backoff: Annotated[float, typer.Option(help="seconds to wait after the first failed try; doubles each time",
                                           min=0)] = 2.0,
    timeout: Annotated[float, typer.Option(help="seconds a connection may stay silent; also the window over which "
                                           "--min-rate is measured", min=0.1)] = 60.0,
    min_rate: Annotated[float, typer.Option(help="bytes/s: a slower transfer counts as stalled and is retried "
                                            "(resuming)", min=0)] = 1024.0,
    deadline: Annotated[float, typer.Option(help="seconds one file may take, all tries and mirrors together",
                                            min=1)] = 48 * 3600.0,
    keep_archives: Annotated[bool, typer.Option(help="keep verified archives under DIR/.downloads/ after "
                                                     "extracting them")] = True,
    manifests: ManifestsOpt = None,
) -> None:
    """Fetch, verify and lay out sources under DIR/<source-id>/ (open: HTTP; Kaggle: your account; others: steps)."""
    from ..download.checksums import ChecksumError, register
    from ..download.http import DownloadSettings
    from ..download.run import download_source

    registry, ids = _selection(names, manifests)
    settings = DownloadSettings(attempts=retries, backoff_s=backoff, timeout_s=timeout, min_rate_bytes_s=min_rate,
                                rate_window_s=timeout, deadline_s=deadline)

    def say(text: str) -> None:
        err.print(text, markup=False, highlight=False, soft_wrap=True)

    results = []
    for source_id in ids:
        result = download_source(registry, source_id, data_dir, settings, extra_hosts=allow_host or (),
                                 keep_archives=keep_archives, say=say)
        results.append(result)
        style = {"ready": "green", "action needed": "yellow", "failed": "red"}[result.status]
        console.print(f"[{style}]{source_id}: {result.status}[/{style}]", highlight=False)
        for line in result.lines:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    conflicts = False
    if register_checksums:
        for result in results:
            if not result.checksums:
                continue
            try:
                diff = register(registry, result.source_id, result.checksums)
            except ChecksumError as exc:
                err.print(str(exc), markup=False, highlight=False, style="red")
                conflicts = True
                continue
            if diff:
                console.print(diff, markup=False, highlight=False, end="")
            else:
                console.print(f"{result.source_id}: checksums already recorded", highlight=False)
    if len(results) > 1:
        table = Table(title="download summary", title_justify="left")
        for col in ("source", "access", "status"):
            table.add_column(col)
        for r in results:
            table.add_row(r.source_id, r.access, r.status)
        console.print(table)
    if conflicts or any(r.status != "ready" for r in results):
        raise typer.Exit(1)


def doctor_command(
    names: NamesArg,
    data_dir: DataDirOpt,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    layout_root: LayoutRootOpt = None,
    labels: Annotated[bool, typer.Option(help="walk each present tree as a build would (no pixels) to check label "
                                              "files' columns and every label value against the manifest")] = True,
    manifests: ManifestsOpt = None,
) -> None:
    """For each source: what is expected, present, missing or wrong (layout drift found and its fix; label files
    and values checked), and the next step; exit 1 while anything is."""
    from ..download.doctor import inspect

    registry, ids = _selection(names, manifests)
    roots = parse_layout_roots(layout_root, ids)
    reports = [inspect(registry, source_id, data_dir, layout_root=roots.get(source_id), labels=labels)
               for source_id in ids]
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        table = Table()
        for col in ("source", "access", "expected", "present", "missing or wrong"):
            table.add_column(col, overflow="fold")
        for r in reports:
            wrong = "\n".join(f"{i.path} ({i.status})" for i in r.problems) or "-"
            table.add_row(r.source_id, r.access, str(r.expected), str(r.present), wrong)
        console.print(table)
        console.print(f"{sum(r.ok for r in reports)} of {len(reports)} source(s) ready in {data_dir}",
                      highlight=False, soft_wrap=True)
        for r in reports:
            if r.ok:
                continue
            console.print(f"{r.source_id}: next step: {r.next_step}", markup=False, highlight=False, soft_wrap=True)
            for line in r.drift:
                console.print(f"    {line}", markup=False, highlight=False, soft_wrap=True)
            for item in r.problems:
                if item.status == "layout drift":
                    continue  # its lines are the drift lines above
                detail = f": {item.detail}" if item.detail else ""
                console.print(f"    {item.path}: {item.status}{detail}", markup=False, highlight=False,
                              soft_wrap=True)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("download")(download_command)
    app.command("doctor")(doctor_command)
