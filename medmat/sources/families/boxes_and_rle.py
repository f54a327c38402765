"""Annotations kept in one table per source: labelled boxes (CSV) or run-length-encoded masks (CSV)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field

from ..base import AdapterParams, Entry, RawBox, RawItem, Skipped, Walk, iter_images, regex_groups
from ..tables import TableSpec, read_table, require_columns


class _TableImages(AdapterParams, TableSpec):
    path_column: str
    path_template: str = "{}"
    match_by: Literal["path", "name", "path_key"] = Field(
        default="path", description="how a table cell finds its image: the relative path, the file name anywhere, "
        "or a key built from the path by path_key_regex/path_key_template")
    path_key_regex: str | None = None
    path_key_template: str | None = None
    split_column: str | None = None
    group_column: str | None = None

    def image_index(self, walk: Walk) -> tuple[dict[str, str], list[Entry], dict[str, list[str]]]:
        """Table key -> relative image path; Skipped entries for files that are not images or whose key is
        shared (every file of a key found N times is quarantined: a row cannot say which one it means); and
        those ambiguous keys -> their files."""
        found: dict[str, list[str]] = {}
        skipped: list[Entry] = []
        for rel, skip in iter_images(walk, self):
            if skip:
                skipped.append(skip)
                continue
            if self.match_by == "path":
                key = rel
            elif self.match_by == "name":
                key = rel.rsplit("/", 1)[-1]
            else:
                match = re.search(self.path_key_regex or "$^", rel)
                if not match:
                    skipped.append(Skipped(rel, "quarantined", f"path does not match path_key_regex {self.path_key_regex!r}"))
                    continue
                key = (self.path_key_template or "{0}").format(*match.groups(), **match.groupdict())
            found.setdefault(key, []).append(rel)
        index = {key: rels[0] for key, rels in found.items() if len(rels) == 1}
        ambiguous = {key: rels for key, rels in found.items() if len(rels) > 1}
        what = "file name" if self.match_by == "name" else "path key"
        for key, rels in sorted(ambiguous.items()):
            skipped += [Skipped(rel, "quarantined", f"{what} {key!r} found {len(rels)} times ({', '.join(rels)}); "
                                f"layout.params.match_by: {self.match_by} cannot tell which one {self.table} means")
                        for rel in rels]
        return index, skipped, ambiguous


class ImageBoxesParams(_TableImages):
    boxes_format: Literal["csv"] = "csv"
    label_column: str
    box_columns: list[str] = Field(min_length=4, max_length=4, description="x_min, y_min, x_max (or w), y_max (or h)")
    box_encoding: Literal["xyxy", "xywh"] = "xyxy"
    no_box_labels: list[str] = Field(default=[], description="labels meaning 'no object' (the image has no box)")


class RleMasksParams(_TableImages):
    rle_column: str
    label_column: str | None = None
    label: str | None = Field(default=None, description="the object class when the table has no label column")
    rle_order: Literal["relative-column-major", "absolute-row-major"] = Field(
        description="SIIM style (relative offsets, column-major) or start-length pairs, row-major, 1-based")
    empty_values: list[str] = ["-1", ""]


def _rows_by_image(root: Path, params: _TableImages, extra_columns: list[str]):
    frame = read_table(root, params)
    require_columns(frame, [params.path_column] + [c for c in extra_columns + [params.split_column,
                                                                             params.group_column] if c], params.table)
    walk = Walk.of(root)
    index, skipped, ambiguous = params.image_index(walk)
    grouped: dict[str, list] = {}
    for i, row in enumerate(frame.to_dict("records")):
        key = params.path_template.format(str(row[params.path_column]).strip())
        grouped.setdefault(key, []).append((i + 2, row))
    for key in sorted(set(grouped) & set(ambiguous)):  # the files were quarantined above; so are their rows
        lines = [line for line, _ in grouped.pop(key)]
        skipped.append(Skipped(key, "quarantined", f"{params.table} rows {lines} name {key!r}, found "
                               f"{len(ambiguous[key])} times: {', '.join(ambiguous[key])}"))
    return index, skipped, grouped


def _finish(index: dict[str, str], grouped: dict, params: _TableImages) -> Iterator[Entry]:
    for key in sorted(set(index) - set(grouped)):
        yield Skipped(index[key], "quarantined", f"image has no row in {params.table}")
    for key in sorted(set(grouped) - set(index)):
        yield Skipped(key, "quarantined", f"{params.table} row {grouped[key][0][0]} names a file that is missing")


def _common(rows, params: _TableImages, rel: str) -> tuple[str | None, str | None]:
    """(split, group) of an image: from the table's columns, else from group_from_regex on its path."""
    first = rows[0][1]
    split = str(first[params.split_column]).strip() if params.split_column else None
    group = str(first[params.group_column]).strip() if params.group_column else None
    if not group and params.group_from_regex:
        group = (regex_groups(params.group_from_regex, rel) or {}).get("group")
    return split or None, group or None


def iter_image_boxes(root: Path, params: ImageBoxesParams) -> Iterator[Entry]:
    index, skipped, grouped = _rows_by_image(root, params, [params.label_column, *params.box_columns])
    yield from skipped
    for key in sorted(set(grouped) & set(index)):
        rows = grouped[key]
        boxes, labels, bad = [], [], None
        for line, row in rows:
            label = str(row[params.label_column]).strip()
            if label in params.no_box_labels:
                continue
            try:
                a, b, c, d = (float(row[col]) for col in params.box_columns)
            except ValueError:
                bad = f"{params.table} row {line}: box values {[row[c] for c in params.box_columns]} are not numbers"
                break
            if params.box_encoding == "xywh":
                c, d = a + c, b + d
            if not (c > a and d > b):
                bad = f"{params.table} row {line}: empty or inverted box {(a, b, c, d)}"
                break
            boxes.append(RawBox(label, a, b, c, d))
            labels.append(label)
        if bad:
            yield Skipped(index[key], "quarantined", bad)
            continue
        split, group = _common(rows, params, index[key])
        yield RawItem(key=index[key], paths=(index[key],), source_labels=tuple(dict.fromkeys(labels)),
                      group_id=group, original_split=split, boxes=tuple(boxes))
    yield from _finish(index, grouped, params)


def iter_rle_masks(root: Path, params: RleMasksParams) -> Iterator[Entry]:
    extra = [params.rle_column] + ([params.label_column] if params.label_column else [])
    index, skipped, grouped = _rows_by_image(root, params, extra)
    yield from skipped
    for key in sorted(set(grouped) & set(index)):
        rows = grouped[key]
        rles = []
        for _, row in rows:
            rle = str(row[params.rle_column]).strip()
            if rle in params.empty_values:
                continue
            label = str(row[params.label_column]).strip() if params.label_column else params.label
            rles.append((label, rle))
        split, group = _common(rows, params, index[key])
        yield RawItem(key=index[key], paths=(index[key],), source_labels=tuple(dict.fromkeys(l for l, _ in rles)),
                      group_id=group, original_split=split, rles=tuple(rles), rle_order=params.rle_order)
    yield from _finish(index, grouped, params)
