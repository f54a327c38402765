"""ChestX-Det (Deepwise) for segmentation: each instance's polygon becomes a mask layer.

Same archive and JSON records as chestx-det (medmat/sources/json_records.py). polygons[i] ([[x, y], ...], image pixels) outlines
instance i of class syms[i]; it is filled into a mask of the image's size and passed on run-length encoded
(start-length pairs, row-major), so the builder derives one box per instance from its mask. An image whose syms and
polygons disagree, or with a polygon of fewer than three points, is quarantined; an image without findings is kept
with no object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError
from pydantic import Field

from ..base import Entry, RawItem, Skipped
from ..json_records import RecordParams, iter_records


class Params(RecordParams):
    polygon_column: str = Field(description="the record key holding one [[x, y], ...] contour per instance")


def _rle(polygon: list, size: tuple[int, int]) -> str:
    """The filled polygon as 1-based start-length pairs over the row-major flattened (height, width) mask."""
    canvas = Image.new("1", size, 0)
    ImageDraw.Draw(canvas).polygon([(float(x), float(y)) for x, y in polygon], fill=1, outline=1)
    flat = np.concatenate([[0], np.asarray(canvas, dtype=np.uint8).ravel(), [0]])
    runs = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(map(str, runs))


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    for rel, record in iter_records(root, params):
        if isinstance(record, Skipped):
            yield record
            continue
        syms, polygons = record[params.label_column], record[params.polygon_column]
        if len(syms) != len(polygons):
            yield Skipped(rel, "quarantined", f"{record['_where']}: {len(syms)} syms but {len(polygons)} polygons")
            continue
        if any(len(p) < 3 for p in polygons):
            yield Skipped(rel, "quarantined", f"{record['_where']}: a polygon has fewer than three points")
            continue
        rles: tuple[tuple[str, str], ...] = ()
        if polygons:
            try:
                with Image.open(root / rel) as image:  # the header only: the mask needs the image's size
                    size = image.size
            except (OSError, UnidentifiedImageError):
                size = None
            if size is None:
                yield Skipped(rel, "quarantined", "corrupt image (its size cannot be read)")
                continue
            rles = tuple((str(label).strip(), _rle(polygon, size)) for label, polygon in zip(syms, polygons))
        yield RawItem(key=rel, paths=(rel,), source_labels=tuple(dict.fromkeys(label for label, _ in rles)),
                      original_split=record["_split"], rles=rles, rle_order="absolute-row-major" if rles else None)
