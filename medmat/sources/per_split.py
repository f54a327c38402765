"""Running a one-table family once per official split: one label file and one image folder per split.

Shared by the sources whose archives publish `train`/`test` tables beside `train`/`test` image folders.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from pydantic import Field

from .base import AdapterParams, Entry, RawItem


class SplitTables(AdapterParams):
    """The per-split fields, mixed into a one-table family's parameters."""

    tables: dict[str, str] = Field(description="split name -> label file, relative to the layout root")
    split_dirs: dict[str, str] = Field(description="split name -> folder holding that split's images")
    # The family's own `table` is set per split from `tables`; `path_template` may name the split's folder as {dir}.
    table: str = Field(default="", description="unused: set per split from `tables`")


def iter_per_split(root: Path, params, iterate: Callable[[Path, AdapterParams], Iterator[Entry]]) -> Iterator[Entry]:
    """Run a one-table family once per split (sorted by name), keeping from each pass only what concerns that
    split: its folder's images and its table's rows. Files outside every split folder (the label files) are seen
    in every pass and kept once. Items get the split as original_split."""
    folders = {split: folder.rstrip("/") + "/" for split, folder in params.split_dirs.items()}
    kept_outside: set[str] = set()
    for split in sorted(params.tables):
        own = folders[split]
        others = [folder for name, folder in folders.items() if name != split]
        one = params.model_copy(update={"table": params.tables[split],
                                        "path_template": params.path_template.replace("{dir}", own.rstrip("/"))})
        for entry in iterate(root, one):
            path = entry.key if isinstance(entry, RawItem) else entry.path
            if any(path.startswith(folder) for folder in others):
                continue  # another split's image: its own pass handles it
            if not path.startswith(own):
                if path in kept_outside:
                    continue
                kept_outside.add(path)
            yield replace(entry, original_split=split) if isinstance(entry, RawItem) else entry
