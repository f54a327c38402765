"""VinDr-SpineXR lesion boxes: one box table and one image folder per official split.

train_images/<image_id>.dicom with annotations/train.csv and test_images/<image_id>.dicom with annotations/test.csv
(one row per box, or one "No finding" row without coordinates). image-boxes reads one table, so it runs once per
split (medmat/sources/per_split.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import Entry
from ..families.boxes_and_rle import ImageBoxesParams, iter_image_boxes
from ..per_split import SplitTables, iter_per_split


class Params(SplitTables, ImageBoxesParams):
    table: str = Field(default="", description="unused: set per split from `tables`")


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    return iter_per_split(root, params, iter_image_boxes)
