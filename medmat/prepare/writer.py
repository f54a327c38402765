"""Streaming Parquet writer for one source: bounded batches, checks, quarantine, report, all-or-nothing output."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa

from .. import __version__
from ..shards import SHARD_ROWS, ShardWriter
from ..sources.base import Skipped
from .process import BatchResult
from .atomic import recover, swap_in


REPORT_FORMAT_VERSION = 2  # bump when report.json changes shape (docs/release-notes.md)


class BuildError(Exception):
    pass


class SourceWriter:
    """Rows go to `<out>/.<id>.partial/` and move to `<out>/<id>/` only when `finish` succeeds."""

    def __init__(self, out: Path, source_id: str, shard_rows: int = SHARD_ROWS):
        self.final = out / source_id
        self.partial = out / f".{source_id}.partial"
        recover(self.final)
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        self.source_id = source_id
        self._shards = ShardWriter(self.partial, "part", rows_per_shard=shard_rows)
        self.written = 0
        self.entries_seen = 0  # counted as entries arrive, not derived from the totals it is checked against
        self.skipped: list[Skipped] = []
        self.labels = Counter()
        self._ids: set[str] = set()
        self._hashes: dict[str, str] = {}

    # -- accounting --------------------------------------------------------------------------------

    def skip(self, entry: Skipped) -> None:
        self.skipped.append(entry)
        self.entries_seen += 1

    def add_batch(self, result: BatchResult) -> list[Skipped]:
        """Account for a batch's skipped items and write its rows; returns every item not written (skipped by the
        worker, or quarantined here), in the batch's input order."""
        for _, entry in result.skipped:
            self.skip(entry)
        skipped_at = {i for i, _ in result.skipped}
        rows_at = [i for i in range(result.size) if i not in skipped_at]  # the batch place of each table row
        problems = [(rows_at[i], entry) for i, entry in self.add_table(result.table)]
        return [entry for _, entry in sorted([*result.skipped, *problems], key=lambda pair: pair[0])]

    def add_table(self, table: pa.Table) -> list[tuple[int, Skipped]]:
        """Write a batch's rows (MAT schema, storage form); returns the rows quarantined here, by their index in
        `table` (duplicate id or duplicate pixels of an earlier row)."""
        ids, shas, paths = (table.column(c).to_pylist() for c in ("id", "pixel_sha256", "original_path"))
        keep, problems = [], []
        for index, (row_id, sha, labels) in enumerate(zip(ids, shas, table.column("labels").to_pylist())):
            self.entries_seen += 1
            first = self._hashes.get(sha)
            if row_id in self._ids or first is not None:
                reason = "duplicate id" if row_id in self._ids else f"duplicate pixels of {first}"
                entry = Skipped(paths[index], "quarantined", reason)
                self.skipped.append(entry)  # counted once, above
                problems.append((index, entry))
                continue
            self._ids.add(row_id)
            self._hashes[sha] = row_id
            self.labels.update(labels or ["(no label)"])
            keep.append(index)
        self.written += len(keep)
        if keep:
            self._shards.write(table if len(keep) == table.num_rows else table.take(keep))
        return problems

    # -- output ------------------------------------------------------------------------------------

    def report(self, files: dict | None = None) -> dict:
        """The build's report. `files` is the ledger's independent count of what is on disk; `reconciled` is true
        only when every file there was accounted for and the entry counts add up."""
        quarantined = sorted((s for s in self.skipped if s.kind == "quarantined"), key=lambda s: (s.path, s.reason))
        excluded = sorted((s for s in self.skipped if s.kind == "excluded"), key=lambda s: (s.path, s.reason))
        entries = self.entries_seen
        files = files or {"on_disk": None, "accounted": None, "unaccounted": None, "unaccounted_files": []}
        reconciled = (entries == self.written + len(quarantined) + len(excluded) and files["unaccounted"] == 0)
        return {
            "source_id": self.source_id,
            "format_version": REPORT_FORMAT_VERSION,
            "medmat_version": __version__,
            "seen": entries,
            "written": self.written,
            "quarantined": len(quarantined),
            "excluded": len(excluded),
            "files": files,
            "reconciled": reconciled,
            "labels": dict(sorted(self.labels.items())),
            "quarantine_reasons": dict(sorted(Counter(_reason_kind(s.reason) for s in quarantined).items())),
            "exclusion_rules": dict(sorted(Counter(_reason_kind(s.reason) for s in excluded).items())),
            "quarantined_files": [{"path": s.path, "reason": s.reason} for s in quarantined],
            "excluded_files": [{"path": s.path, "reason": s.reason} for s in excluded],
        }

    def finish(self, files: dict | None = None) -> dict:
        self._shards.close(keep_empty=True)  # an empty source still gets one file, so its schema travels with it
        report = self.report(files)
        with open(self.partial / "report.json", "w") as fh:
            fh.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        swap_in(self.partial, self.final)  # readers see the old complete folder or the new one, never a mixture
        return report

    def abort(self) -> None:
        try:
            self._shards.close()
        except Exception:  # noqa: BLE001 - the folder goes anyway; the first error is what the user sees
            pass
        shutil.rmtree(self.partial, ignore_errors=True)


def _reason_kind(reason: str) -> str:
    """A reason without its per-file details, for counting (e.g. 'corrupt image', "unknown label 'X'")."""
    text = reason.split(" (", 1)[0]
    return text.split(": ", 1)[-1] if ": " in text and not text.startswith("label ") else text
