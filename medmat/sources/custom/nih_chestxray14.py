"""NIH ChestX-ray14: Data_Entry_2017_v2020.csv labels images/<Image Index>; the official split is two file lists.

label-table reads the findings ('|'-separated) and the Patient ID; it has no way to take a split from text files,
so this builder adds it: each image gets the split whose list (train_val_list.txt, test_list.txt: one file name a
line) names it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import Entry, RawItem
from ..families.label_table import LabelTableParams, iter_label_table
from ..tables import TableError


class Params(LabelTableParams):
    split_lists: dict[str, str] = Field(description="split name -> text file listing that split's image file names")


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    split_of: dict[str, str] = {}
    for split, listing in sorted(params.split_lists.items()):
        path = root / listing
        if not path.is_file():
            raise TableError(f"split list {listing} is missing under {root}")
        for name in path.read_text(encoding="utf-8").split():
            split_of[name] = split
    for entry in iter_label_table(root, params):
        if isinstance(entry, RawItem):
            entry = replace(entry, original_split=split_of.get(entry.key.rsplit("/", 1)[-1], entry.original_split))
        yield entry
