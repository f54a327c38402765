"""Shared by several ISIC-style builders: one label table per official split, each naming images of its own folder,
plus an optional second table that gives each image its lesion/patient group.

The generic label-table family reads a single table; the ISIC challenge archives ship one ground-truth file per
split (Training / Validation / Test) and keep lesion ids in a separate file. Each table row names an image by its
file stem (`path_column`), placed by the part's `path_template`; its label is one column or one-hot columns.
Every file under the root is accounted for: non-images and `exclude_regex` matches are excluded, images without a
row and rows without an image are quarantined.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import ConfigDict, Field

from medmat.adapters.base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images
from medmat.adapters.tables import TableSpec, read_table, require_columns


class SplitTable(TableSpec):
    split: str | None = Field(default=None, description="the official split of every row of this table")
    path_template: str = Field(description="how a path cell becomes a relative path, e.g. Training/{}.jpg")


class GroupTable(TableSpec):
    key_column: str = Field(description="column holding the same value as the label tables' path_column")
    group_column: str = Field(description="column holding the lesion/patient id (empty: no group)")


class SplitTablesParams(AdapterParams):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: list[SplitTable] = Field(min_length=1)
    path_column: str
    label_column: str | None = None
    label_columns: list[str] = Field(default=[], description="one-hot columns, named by the label they stand for")
    positive_values: list[str] = ["1", "1.0", "True", "true"]
    all_zero_label: str | None = Field(default=None, description="label of a row with no positive column")
    groups: GroupTable | None = None


def _row_labels(row, params: SplitTablesParams) -> list[str]:
    if params.label_column:
        cell = str(row[params.label_column]).strip()
        return [cell] if cell else []
    labels = [c for c in params.label_columns if str(row[c]).strip() in params.positive_values]
    return labels or ([params.all_zero_label] if params.all_zero_label else [])


def _groups(root: Path, spec: GroupTable | None) -> dict[str, str]:
    if spec is None:
        return {}
    frame = read_table(root, spec)
    require_columns(frame, [spec.key_column, spec.group_column], spec.table)
    return {str(k).strip(): str(g).strip() for k, g in zip(frame[spec.key_column], frame[spec.group_column])
            if str(g).strip()}


def iter_split_tables(root: Path, params: SplitTablesParams) -> Iterator[Entry]:
    groups = _groups(root, params.groups)
    rows: dict[str, tuple[list[str], str | None, str | None, str]] = {}  # rel -> labels, split, group, where
    duplicates: list[Skipped] = []
    for part in params.tables:
        frame = read_table(root, part)
        require_columns(frame, [params.path_column, *filter(None, [params.label_column]), *params.label_columns],
                        part.table)
        for index, row in frame.iterrows():
            cell = str(row[params.path_column]).strip()
            rel = part.path_template.format(cell)
            where = f"{part.table} row {index + (1 if part.column_names or part.header is None else 2)}"
            if rel in rows:
                duplicates.append(Skipped(rel, "quarantined", f"{where} repeats this image"))
                continue
            rows[rel] = (_row_labels(row, params), part.split, groups.get(cell), where)

    yield from duplicates
    images = dict(iter_images(Walk.of(root), params))
    for rel in sorted(rows):
        labels, split, group, where = rows[rel]
        if rel not in images:
            yield Skipped(rel, "quarantined", f"{where} names a file that is missing")
        elif images[rel] is not None:
            yield images[rel]
        elif not labels:
            yield Skipped(rel, "quarantined", f"{where} has no label")
        else:
            yield RawItem(key=rel, paths=(rel,), source_labels=tuple(labels), group_id=group, original_split=split)
    tables = ", ".join(p.table for p in params.tables)
    for rel, skipped in images.items():
        if rel not in rows:
            yield skipped or Skipped(rel, "quarantined", f"image has no row in {tables}")


__all__ = ["GroupTable", "SplitTable", "SplitTablesParams", "iter_split_tables"]
