"""JSON record lists: one object per image, with per-instance parallel lists (ChestX-Det's annotation files).

`{file_name, syms, boxes, polygons}` per image, one list file and one image folder per split. Neither label-table
(a JSON cell holding a list is not a separated string) nor image-boxes (CSV only) reads this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from pydantic import Field

from .base import AdapterParams, Skipped, Walk, iter_images, listed_file
from .tables import TableError


class RecordParams(AdapterParams):
    tables: dict[str, str] = Field(description="split name -> JSON annotation list, relative to the layout root")
    split_dirs: dict[str, str] = Field(description="split name -> folder holding that split's images")
    path_column: str = Field(description="the record key holding the image file name")
    label_column: str = Field(description="the record key holding one class name per instance")


def iter_records(root: Path, params: RecordParams) -> Iterator[tuple[str, object]]:
    """(relative path, record dict) for each image to build, or (path, Skipped), in sorted path order."""
    images = dict(iter_images(Walk.of(root), params))  # relative path -> None (image) or Skipped
    entries: dict[str, object] = {}
    for split in sorted(params.tables):
        table = params.tables[split]
        try:
            records = json.loads((root / table).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise TableError(f"label file {table} cannot be read as a JSON list: {exc}") from exc
        folder = params.split_dirs[split].rstrip("/")
        for number, record in enumerate(records, start=1):
            rel = f"{folder}/{record[params.path_column]}"
            if rel in entries:
                entries[rel] = Skipped(rel, "quarantined", f"{table} record {number} repeats this image")
            elif (problem := listed_file(rel, images, f"{table} record {number}")) is not None:
                entries[rel] = problem
            else:
                entries[rel] = dict(record, _split=split, _where=f"{table} record {number}")
    # Files no record names: label files and other non-images (excluded), stray images (quarantined).
    for rel, skipped in images.items():
        if rel not in entries:
            entries[rel] = skipped or Skipped(rel, "quarantined", "image has no record in "
                                              f"{', '.join(sorted(params.tables.values()))}")
    for rel in sorted(entries):
        yield rel, entries[rel]
