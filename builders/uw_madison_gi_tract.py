"""UW-Madison GI Tract: the rle-masks family, plus the patient (case) id taken from the image path.

train.csv has no case column (its id is case<N>_day<D>_slice_<NNNN>), and the rle-masks family reads the group only
from a table column, so this wraps it and applies `group_from_regex` to each image's path. Everything else (matching
rows to images by a key built from the path, decoding the run-length masks) is the family's own code.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterator

from medmat.adapters.base import Entry, RawItem, regex_groups
from medmat.adapters.boxes_and_rle import RleMasksParams, iter_rle_masks


class Params(RleMasksParams):
    pass


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    for entry in iter_rle_masks(root, params):
        if isinstance(entry, RawItem) and entry.group_id is None:
            entry = replace(entry, group_id=(regex_groups(params.group_from_regex, entry.key) or {}).get("group"))
        yield entry
