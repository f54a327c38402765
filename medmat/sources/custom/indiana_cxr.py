"""Indiana University chest X-rays (Kaggle raddar/chest-xrays-indiana-university): labels joined through the report.

indiana_projections.csv gives each image file its report uid (and projection); indiana_reports.csv gives each uid
its findings in Problems (';'-separated MeSH headings, or "normal"). label-table reads a single table, so this
builder joins the two on uid: every image of a report carries that report's headings (each once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, listed_file
from ..tables import TableSpec, read_table, require_columns


class Params(AdapterParams):
    table: str = Field(description="the table naming each image and its report id, relative to the root")
    path_column: str
    path_template: str = Field(default="{}", description="how a file name cell becomes a relative path")
    join_column: str = Field(description="the report id column, in both tables")
    label_table: str = Field(description="the table giving each report's labels")
    label_column: str
    label_separator: str


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    images = dict(iter_images(Walk.of(root), params))  # relative path -> None (image) or Skipped
    frame = read_table(root, TableSpec(table=params.table))
    require_columns(frame, [params.path_column, params.join_column], params.table)
    reports = read_table(root, TableSpec(table=params.label_table))
    require_columns(reports, [params.join_column, params.label_column], params.label_table)

    labels_of: dict[str, list[str]] = {}
    for _, row in reports.iterrows():
        cell = str(row[params.label_column])
        labels = list(dict.fromkeys(p.strip() for p in cell.split(params.label_separator) if p.strip()))
        labels_of[str(row[params.join_column]).strip()] = labels

    entries: dict[str, Entry] = {}
    for index, row in frame.iterrows():
        rel = params.path_template.format(str(row[params.path_column]).strip())
        uid = str(row[params.join_column]).strip()
        if rel in entries:
            entries[rel] = Skipped(rel, "quarantined", f"{params.table} row {index + 2} repeats this image")
        elif (problem := listed_file(rel, images, f"{params.table} row {index + 2}")) is not None:
            entries[rel] = problem
        elif uid not in labels_of:
            entries[rel] = Skipped(rel, "quarantined", f"{params.join_column} {uid} has no row in {params.label_table}")
        elif not labels_of[uid]:
            entries[rel] = Skipped(rel, "quarantined", f"{params.label_table}: report {uid} has no label")
        else:
            entries[rel] = RawItem(key=rel, paths=(rel,), source_labels=tuple(labels_of[uid]), group_id=uid)
    # Files no row names: label files and other non-images (excluded), stray images (quarantined).
    for rel, skipped in images.items():
        if rel not in entries:
            entries[rel] = skipped or Skipped(rel, "quarantined", f"image has no row in {params.table}")
    for rel in sorted(entries):
        yield entries[rel]
