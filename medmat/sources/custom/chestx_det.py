"""ChestX-Det (Deepwise): one JSON annotation list and one image folder per official split.

ChestX_Det_train.json / ChestX_Det_test.json are lists of {file_name, syms, boxes, polygons}: syms[i], boxes[i] and
polygons[i] describe instance i of the image; empty lists mean no finding. Neither label-table (a JSON cell holding
a list is not a separated string) nor image-boxes (CSV only) reads this, hence this builder. For classification an
image's labels are its distinct syms (none: no finding, kept with no label). The record reading is
medmat/sources/json_records.py, shared with the segmentation source of the same archive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ..base import Entry, RawItem, Skipped
from ..json_records import RecordParams as Params
from ..json_records import iter_records


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    for rel, record in iter_records(root, params):
        if isinstance(record, Skipped):
            yield record
            continue
        labels = tuple(dict.fromkeys(str(s).strip() for s in record[params.label_column]))
        yield RawItem(key=rel, paths=(rel,), source_labels=labels, original_split=record["_split"])
