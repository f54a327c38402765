"""CoronaHack chest X-rays: one metadata table whose label is the most specific non-empty of several columns, and
whose split column names the image folder (train/ or test/, under a doubled or single top folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, listed_file
from ..tables import TableSpec, read_table, require_columns


class Params(AdapterParams, TableSpec):
    path_column: str
    label_columns: list[str] = Field(min_length=1, description="label columns, most specific first: the label is the "
                                     "first non-empty cell")
    split_column: str
    image_dirs: dict[str, list[str]] = Field(description="split value -> candidate image folders; the first that "
                                             "exists is used")


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    frame = read_table(root, params)
    require_columns(frame, [params.path_column, params.split_column, *params.label_columns], params.table)
    images = dict(iter_images(Walk.of(root), params))
    # The folder of each split: the first candidate present (copies differ in whether the top folder is doubled).
    folders = {split: next((d for d in dirs if (root / d).is_dir()), dirs[0])
               for split, dirs in params.image_dirs.items()}

    rows: dict[str, tuple[int, str, str]] = {}  # relative path -> (table row, label, split)
    for index, row in frame.iterrows():
        where = f"{params.table} row {index + 2}"
        split = str(row[params.split_column]).strip()
        name = str(row[params.path_column]).strip()
        if split not in folders:
            yield Skipped(name, "quarantined", f"{where}: split {split!r} is not in layout.params.image_dirs")
            continue
        rel = f"{folders[split]}/{name}"
        label = next((str(row[c]).strip() for c in params.label_columns if str(row[c]).strip()), "")
        if rel in rows:
            yield Skipped(rel, "quarantined", f"{where} repeats this image")
        elif not label:
            yield Skipped(rel, "quarantined", f"{where} has no label")
        else:
            rows[rel] = (index + 2, label, split)

    for rel in sorted(rows):
        line, label, split = rows[rel]
        if (problem := listed_file(rel, images, f"{params.table} row {line}")) is not None:
            yield problem
        else:
            yield RawItem(key=rel, paths=(rel,), source_labels=(label,), original_split=split)

    for rel, skipped in images.items():
        if rel not in rows:
            yield skipped or Skipped(rel, "quarantined", f"image has no row in {params.table}")
