"""Images listed in a label table: a path column plus one label column, a separated list, or one-hot columns."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field

from .base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, regex_groups
from .tables import TableSpec, read_table, require_columns


class LabelTableParams(AdapterParams, TableSpec):
    path_column: str
    path_template: str = Field(default="{}", description="how a path cell becomes a relative path, e.g. images/{}.png")
    image_dirs: list[str] = Field(
        default=[], description="find images by file name anywhere under these folders (for archives split in parts)"
    )
    label_from: Literal["column", "columns"] = "column"
    label_column: str | None = None
    label_separator: str | None = Field(default=None, description="several labels in one cell, e.g. '|'")
    label_columns: list[str] = Field(default=[], description="one-hot columns, named by the label they stand for")
    positive_values: list[str] = ["1", "1.0", "True", "true"]
    uncertain_values: list[str] = Field(default=[], description="one-hot values meaning 'uncertain' (row excluded)")
    all_zero_label: str | None = Field(default=None, description="label of a row with no positive column")
    split_column: str | None = None
    split_names: dict[str, str] = {}
    group_column: str | None = None
    aggregate: bool = Field(default=False, description="several rows per image: union their labels")


def _labels(row, params: LabelTableParams) -> tuple[list[str], str | None]:
    """(labels, why the row is excluded or None)."""
    if params.label_from == "column":
        cell = str(row[params.label_column]).strip()
        if params.label_separator:
            labels = [part.strip() for part in cell.split(params.label_separator) if part.strip()]
        else:
            labels = [cell] if cell else []
        return labels, None
    values = {c: str(row[c]).strip() for c in params.label_columns}
    uncertain = [c for c, v in values.items() if v in params.uncertain_values]
    if uncertain:
        return [], f"uncertain label(s) {uncertain} (layout.params.uncertain_values)"
    labels = [c for c, v in values.items() if v in params.positive_values]
    if not labels and params.all_zero_label:
        labels = [params.all_zero_label]
    return labels, None


def iter_label_table(root: Path, params: LabelTableParams) -> Iterator[Entry]:
    frame = read_table(root, params)
    needed = [params.path_column] + [c for c in (params.label_column, params.split_column, params.group_column) if c]
    require_columns(frame, needed + list(params.label_columns), params.table)

    walk = Walk.of(root)
    images: dict[str, Skipped | None] = dict(iter_images(walk, params))
    by_name: dict[str, list[str]] = defaultdict(list)
    for rel in images:
        if params.image_dirs and any(rel.startswith(d.rstrip("/") + "/") for d in params.image_dirs):
            by_name[rel.rsplit("/", 1)[-1]].append(rel)

    rows: dict[str, dict] = {}
    order: list[str] = []
    for index, row in frame.iterrows():
        cell = str(row[params.path_column]).strip()
        rel = params.path_template.format(cell)
        if params.image_dirs:
            hits = by_name.get(rel.rsplit("/", 1)[-1], [])
            if len(hits) > 1:
                yield Skipped(rel, "quarantined", f"file name found {len(hits)} times under {params.image_dirs}")
                continue
            rel = hits[0] if hits else rel
        labels, excluded = _labels(row, params)
        if excluded:
            yield Skipped(rel, "excluded", f"{params.table} row {index + 2}: {excluded}")
            rows.setdefault(rel, {"handled": True})
            continue
        entry = rows.get(rel)
        if entry is not None and not params.aggregate:
            yield Skipped(rel, "quarantined", f"{params.table} row {index + 2} repeats this image "
                          "(set layout.params.aggregate: true if rows are meant to add labels)")
            continue
        if entry is None or entry.get("handled"):
            entry = rows[rel] = {"labels": [], "split": None, "group": None, "row": index + 2}
            order.append(rel)
        entry["labels"] += [lab for lab in labels if lab not in entry["labels"]]
        if params.split_column:
            split = str(row[params.split_column]).strip()
            entry["split"] = params.split_names.get(split, split) or None
        if params.group_column:
            entry["group"] = str(row[params.group_column]).strip() or None

    for rel in sorted(order):
        entry = rows[rel]
        if rel not in images:
            yield Skipped(rel, "quarantined", f"{params.table} row {entry['row']} names a file that is missing")
            continue
        if images[rel] is not None:
            yield images[rel]
            continue
        if not entry["labels"]:
            yield Skipped(rel, "quarantined", f"{params.table} row {entry['row']} has no label")
            continue
        group = entry["group"]
        groups = regex_groups(params.filename_regex, rel.rsplit("/", 1)[-1]) or {}
        group = group or groups.get("group")
        yield RawItem(key=rel, paths=(rel,), source_labels=tuple(entry["labels"]), group_id=group,
                      original_split=entry["split"] or groups.get("split"))

    listed = set(rows)
    for rel, skipped in images.items():
        if rel in listed:
            continue
        if skipped is not None:
            yield skipped
        else:
            yield Skipped(rel, "quarantined", f"image has no row in {params.table}")
