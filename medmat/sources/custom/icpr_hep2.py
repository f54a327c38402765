"""ICPR 2012 HEp-2 cells (MIVIA): cropped cells training/NNN.png and test/NNN.png, labelled by a table whose name,
format and columns are not confirmed from public material.

Until a maintainer with the data fills in `labels` (the label-table family's parameters: table, path_column,
path_template, label_column, ...), no cell can be labelled, and every image is quarantined with that reason
rather than given a guessed label. Once `labels` is set, the label-table family reads it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, Skipped, Walk, iter_images
from ..families.label_table import LabelTableParams, iter_label_table


class Params(AdapterParams):
    labels: LabelTableParams | None = Field(
        default=None, description="the cell label table as the label-table family reads it; unset while unconfirmed")


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    if params.labels is not None:
        yield from iter_label_table(root, params.labels)
        return
    for rel, skipped in iter_images(Walk.of(root), params):
        yield skipped or Skipped(rel, "quarantined", "no label table configured (layout.params.labels): the ICPR "
                                 "2012 label file's name and columns are not confirmed")


__all__ = ["Params", "iter_items"]
