"""Mini-MIAS: the label-table family on Info.txt (one row per abnormality, rows of one image united), plus two
rules the family lacks: films mdb<2k-1> and mdb<2k> are the left and right breast of one woman (one group), and an
image whose rows give different classes is excluded (its single label would be ambiguous)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import Entry, RawItem, Skipped
from ..families.label_table import LabelTableParams, iter_label_table


class Params(LabelTableParams):
    pair_groups: bool = Field(default=False, description="the numeric `group` of filename_regex pairs up: "
                              "2k-1 and 2k are one group (the two films of one woman)")


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    for entry in iter_label_table(root, params):
        if isinstance(entry, RawItem):
            if len(entry.source_labels) > 1:
                entry = Skipped(entry.key, "excluded", f"{params.table} rows of this image disagree on "
                                f"{params.label_column}: {list(entry.source_labels)}")
            elif params.pair_groups and entry.group_id and entry.group_id.isdigit():
                entry = replace(entry, group_id=f"pair-{(int(entry.group_id) + 1) // 2:03d}")
        yield entry
