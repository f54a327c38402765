"""RSNA Pneumonia Detection Challenge (stage 2): image classes from two tables joined on patientId.

stage_2_train_labels.csv lists every labelled image (one row per opacity box, or one row with Target 0);
stage_2_detailed_class_info.csv repeats its rows with the three-way class ("Lung Opacity", "No Lung Opacity / Not
Normal", "Normal"). label-table reads a single table, so this builder joins them: the labels table names the images,
the class table gives their label, and Target 1 must agree with the class that stands for it. Images are
stage_2_train_images/<patientId>.dcm; one patientId is one image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, listed_file
from ..tables import TableSpec, read_table, require_columns


class Params(AdapterParams):
    table: str = Field(description="the table naming the labelled images (one row per box), relative to the root")
    class_table: str = Field(description="the table giving each image's class, joined on path_column")
    path_column: str
    path_template: str = Field(default="{}", description="how an id cell becomes a relative path")
    label_column: str = Field(description="the class column of class_table")
    target_column: str | None = Field(default=None, description="binary column of `table` (1 = positive)")
    target_label: str | None = Field(default=None, description="the class a target of 1 stands for")


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    images = dict(iter_images(Walk.of(root), params))  # relative path -> None (image) or Skipped
    frame = read_table(root, TableSpec(table=params.table))
    require_columns(frame, [params.path_column] + ([params.target_column] if params.target_column else []),
                    params.table)
    classes = read_table(root, TableSpec(table=params.class_table))
    require_columns(classes, [params.path_column, params.label_column], params.class_table)

    class_of: dict[str, list[str]] = {}  # id -> distinct classes, in file order
    for _, row in classes.iterrows():
        found = class_of.setdefault(str(row[params.path_column]).strip(), [])
        label = str(row[params.label_column]).strip()
        if label and label not in found:
            found.append(label)
    first_line: dict[str, int] = {}
    targets: dict[str, set[str]] = {}
    for index, row in frame.iterrows():
        image_id = str(row[params.path_column]).strip()
        first_line.setdefault(image_id, index + 2)
        if params.target_column:
            targets.setdefault(image_id, set()).add(str(row[params.target_column]).strip())

    entries: dict[str, Entry] = {}
    for image_id, line in first_line.items():
        rel = params.path_template.format(image_id)
        labels = class_of.get(image_id, [])
        positive = {"1", "1.0"} & targets.get(image_id, set())
        if (problem := listed_file(rel, images, f"{params.table} row {line}")) is not None:
            entries[rel] = problem
        elif not labels:
            entries[rel] = Skipped(rel, "quarantined", f"no row in {params.class_table}")
        elif params.target_label and bool(positive) != (labels == [params.target_label]):
            entries[rel] = Skipped(rel, "quarantined", f"{params.table} row {line}: {params.target_column} "
                                   f"{sorted(targets[image_id])} disagrees with class {labels} in {params.class_table}")
        else:
            entries[rel] = RawItem(key=rel, paths=(rel,), source_labels=tuple(labels), group_id=image_id)
    # Files no row names: label files and other non-images (excluded), stray images (quarantined).
    for rel, skipped in images.items():
        if rel not in entries:
            entries[rel] = skipped or Skipped(rel, "quarantined", f"image has no row in {params.table}")
    for rel in sorted(entries):
        yield entries[rel]
