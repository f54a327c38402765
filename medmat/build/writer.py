"""Streaming Parquet writer for one source: bounded batches, checks, quarantine, report, all-or-nothing output."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..adapters.base import Skipped
from ..schema import MAT_FEATURES

SHARD_ROWS = 2000  # rows per Parquet file; with images of a few hundred kB, a few hundred MB per shard
ROW_GROUP_ROWS = 64  # small row groups keep memory bounded while streaming images and volumes


# Media bytes are already compressed (JPEG, PNG, gzipped NIfTI): compressing them again costs time for nothing.
_MEDIA = ("image", "volume", "mask")
_COMPRESSION = {name: "zstd" for name in MAT_FEATURES.arrow_schema.names if name not in _MEDIA} | {
    f"{m}.{leaf}": ("none" if leaf == "bytes" else "zstd") for m in _MEDIA for leaf in ("bytes", "path")}


class BuildError(Exception):
    pass


class SourceWriter:
    """Rows go to `<out>/.<id>.partial/` and move to `<out>/<id>/` only when `finish` succeeds."""

    def __init__(self, out: Path, source_id: str, shard_rows: int = SHARD_ROWS):
        self.final = out / source_id
        self.partial = out / f".{source_id}.partial"
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True)
        self.source_id = source_id
        self.shard_rows = shard_rows
        self.schema = MAT_FEATURES.arrow_schema
        self._writer: pq.ParquetWriter | None = None
        self._shard = 0
        self._rows_in_shard = 0
        self._buffer: list[dict] = []
        self.written = 0
        self.skipped: list[Skipped] = []
        self.labels = Counter()
        self._ids: set[str] = set()
        self._hashes: dict[str, str] = {}

    # -- accounting --------------------------------------------------------------------------------

    def skip(self, entry: Skipped) -> None:
        self.skipped.append(entry)

    def add(self, row: dict) -> Skipped | None:
        """Write a row, or return why it was quarantined (duplicate id or duplicate pixels)."""
        if row["id"] in self._ids:
            return self._quarantine(row, "duplicate id")
        first = self._hashes.get(row["pixel_sha256"])
        if first is not None:
            return self._quarantine(row, f"duplicate pixels of {first}")
        self._ids.add(row["id"])
        self._hashes[row["pixel_sha256"]] = row["id"]
        self.labels.update(row["labels"] or ["(no label)"])
        self._buffer.append(row)  # already in storage form: media as {"bytes", "path"}, the rest plain values
        self.written += 1
        if len(self._buffer) >= ROW_GROUP_ROWS:
            self._flush()
        return None

    def _quarantine(self, row: dict, reason: str) -> Skipped:
        entry = Skipped(row["original_path"], "quarantined", reason)
        self.skipped.append(entry)
        return entry

    # -- output ------------------------------------------------------------------------------------

    def _flush(self) -> None:
        while self._buffer:
            if self._writer is None:
                path = self.partial / f"part-{self._shard:05d}.parquet"
                self._writer = pq.ParquetWriter(path, self.schema, compression=_COMPRESSION)
            room = self.shard_rows - self._rows_in_shard
            chunk, self._buffer = self._buffer[:room], self._buffer[room:]
            self._writer.write_table(pa.Table.from_pylist(chunk, schema=self.schema), row_group_size=ROW_GROUP_ROWS)
            self._rows_in_shard += len(chunk)
            if self._rows_in_shard >= self.shard_rows:
                self._writer.close()
                self._writer, self._shard, self._rows_in_shard = None, self._shard + 1, 0

    def report(self) -> dict:
        quarantined = sorted((s for s in self.skipped if s.kind == "quarantined"), key=lambda s: (s.path, s.reason))
        excluded = sorted((s for s in self.skipped if s.kind == "excluded"), key=lambda s: (s.path, s.reason))
        seen = self.written + len(quarantined) + len(excluded)
        return {
            "source_id": self.source_id,
            "seen": seen,
            "written": self.written,
            "quarantined": len(quarantined),
            "excluded": len(excluded),
            "reconciled": seen == self.written + len(quarantined) + len(excluded),
            "labels": dict(sorted(self.labels.items())),
            "quarantine_reasons": dict(sorted(Counter(_reason_kind(s.reason) for s in quarantined).items())),
            "exclusion_rules": dict(sorted(Counter(_reason_kind(s.reason) for s in excluded).items())),
            "quarantined_files": [{"path": s.path, "reason": s.reason} for s in quarantined],
            "excluded_files": [{"path": s.path, "reason": s.reason} for s in excluded],
        }

    def finish(self) -> dict:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.written == 0:
            # An empty source still gets one file (no row groups) so that its schema travels with it.
            pq.ParquetWriter(self.partial / "part-00000.parquet", self.schema).close()
        report = self.report()
        (self.partial / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        if self.final.exists():
            shutil.rmtree(self.final)
        self.partial.rename(self.final)
        return report

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        shutil.rmtree(self.partial, ignore_errors=True)


def _reason_kind(reason: str) -> str:
    """A reason without its per-file details, for counting (e.g. 'corrupt image', "unknown label 'X'")."""
    text = reason.split(" (", 1)[0]
    return text.split(": ", 1)[-1] if ": " in text and not text.startswith("label ") else text
