"""VinDr-SpineXR as single-label classification: one image-level label per image from the per-box tables.

The archive keeps one annotation CSV per official split (annotations/train.csv, annotations/test.csv), each with
one row per lesion box (or a single "No finding" row), and the DICOM files in one folder per split
(train_images/<image_id>.dicom, test_images/<image_id>.dicom). label-table reads a single table and cannot drop
images whose rows disagree, hence this builder: rows are grouped by image; an image whose rows carry one
lesion type gets that label, an image with two or more distinct lesion types is excluded (a single-label
subset cannot state it; the detection source vindr-spinexr-det keeps it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, listed_file
from ..tables import TableSpec, read_table, require_columns


class Params(AdapterParams):
    tables: dict[str, str] = Field(description="split name -> annotation CSV, relative to the layout root")
    image_dirs: dict[str, str] = Field(description="split name -> folder holding that split's images")
    path_column: str
    path_template: str = Field(default="{}", description="how an id cell becomes a file name, e.g. {}.dicom")
    label_column: str
    group_column: str | None = None


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    images = dict(iter_images(Walk.of(root), params))  # relative path -> None (image) or Skipped
    entries: dict[str, Entry] = {}
    listed: set[str] = set()

    for split in sorted(params.tables):
        table = params.tables[split]
        frame = read_table(root, TableSpec(table=table))
        require_columns(frame, [params.path_column, params.label_column]
                        + ([params.group_column] if params.group_column else []), table)
        # image id -> (first CSV line, distinct lesion types in order, group id)
        by_image: dict[str, tuple[int, list[str], str | None]] = {}
        for index, row in frame.iterrows():
            image_id = str(row[params.path_column]).strip()
            line, labels, group = by_image.setdefault(image_id, (index + 2, [], None))
            label = str(row[params.label_column]).strip()
            if label and label not in labels:
                labels.append(label)
            if group is None and params.group_column:
                group = str(row[params.group_column]).strip() or None
            by_image[image_id] = (line, labels, group)

        folder = params.image_dirs[split].rstrip("/")
        for image_id, (line, labels, group) in by_image.items():
            rel = f"{folder}/{params.path_template.format(image_id)}"
            listed.add(rel)
            if (problem := listed_file(rel, images, f"{table} row {line}")) is not None:
                entries[rel] = problem
            elif not labels:
                entries[rel] = Skipped(rel, "quarantined", f"{table} row {line} has no label")
            elif len(labels) > 1:
                entries[rel] = Skipped(rel, "excluded", f"{len(labels)} distinct lesion types {labels} in {table}: "
                                       "not a single-label image")
            else:
                entries[rel] = RawItem(key=rel, paths=(rel,), source_labels=(labels[0],), group_id=group,
                                       original_split=split)

    # Files no table names: label files and other non-images (excluded), stray images (quarantined).
    for rel, skipped in images.items():
        if rel not in listed:
            entries[rel] = skipped or Skipped(rel, "quarantined", "image has no row in "
                                              f"{', '.join(sorted(params.tables.values()))}")
    for rel in sorted(entries):
        yield entries[rel]
