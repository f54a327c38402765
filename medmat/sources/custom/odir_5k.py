"""ODIR-5K: one workbook row per PATIENT naming both eye photographs (Left-Fundus, Right-Fundus) and each eye's
diagnostic keywords; the N/D/G/C/A/H/M/O columns describe the patient (both eyes together), so an eye's labels
are derived from its own keywords: each keyword takes the class whose explicit keyword list (`keyword_labels`)
holds it, quality remarks (`ignore_keywords`) are dropped, and an eye with an `exclude_keywords` keyword (not a
fundus photograph) is excluded. There is no catch-all: an eye with a keyword no list names is quarantined, the
reason naming the keyword, so that a spelling the manifest does not know never becomes a label silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, listed_file
from ..tables import TableSpec, read_table, require_columns


class Params(AdapterParams, TableSpec):
    image_dir: str = Field(description="folder holding the photographs named in the path columns")
    id_column: str = Field(description="patient id column (the group of both eyes)")
    eyes: dict[str, str] = Field(min_length=1, description="photograph column -> that eye's keyword column")
    keyword_separator: str = Field(description="regex separating the keywords of one cell")
    keyword_labels: dict[str, list[str]] = Field(
        min_length=1, description="source label -> the exact keywords (lower-cased) it takes; no catch-all")
    ignore_keywords: list[str] = Field(default=[], description="keywords that are not diagnoses (image quality)")
    exclude_keywords: list[str] = Field(default=[], description="keywords meaning the photograph is not usable")


def _eye_labels(cell: str, params: Params) -> tuple[list[str], str | None, str | None]:
    """(labels of one eye, the excluding keyword or None, the first unknown keyword or None)."""
    labels: list[str] = []
    unknown = None
    for keyword in (k.strip().lower() for k in re.split(params.keyword_separator, cell)):
        if not keyword or keyword in params.ignore_keywords:
            continue
        if keyword in params.exclude_keywords:
            return [], keyword, None
        label = next((lab for lab, keywords in params.keyword_labels.items() if keyword in keywords), None)
        if label is None:
            unknown = unknown or keyword
        elif label not in labels:
            labels.append(label)
    order = list(params.keyword_labels)
    return sorted(labels, key=order.index), None, unknown


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    frame = read_table(root, params)
    require_columns(frame, [params.id_column, *params.eyes, *params.eyes.values()], params.table)
    images = dict(iter_images(Walk.of(root), params))
    listed: set[str] = set()
    eyes = []  # (image, patient, table row, labels, excluding keyword, unknown keyword)
    for index, row in frame.iterrows():
        patient = str(row[params.id_column]).strip()
        for path_column, keyword_column in params.eyes.items():
            rel = f"{params.image_dir.rstrip('/')}/{str(row[path_column]).strip()}"
            if rel in listed:
                yield Skipped(rel, "quarantined", f"{params.table} row {index + 2} repeats this image")
                continue
            listed.add(rel)
            eyes.append((rel, patient, index + 2, *_eye_labels(str(row[keyword_column]), params)))

    for rel, patient, line, labels, excluding, unknown in sorted(eyes):
        if (problem := listed_file(rel, images, f"{params.table} row {line}")) is not None:
            yield problem
        elif excluding:
            yield Skipped(rel, "excluded", f"{params.table} row {line}: keyword {excluding!r} "
                          "(layout.params.exclude_keywords)")
        elif unknown:
            yield Skipped(rel, "quarantined", f"{params.table} row {line}: unknown label keyword {unknown!r} "
                          "(in no list of layout.params.keyword_labels, ignore_keywords or exclude_keywords)")
        elif not labels:
            yield Skipped(rel, "quarantined", f"{params.table} row {line} has no diagnostic keyword for this eye")
        else:
            yield RawItem(key=rel, paths=(rel,), source_labels=tuple(labels), group_id=patient)

    for rel, skipped in images.items():
        if rel not in listed:
            yield skipped or Skipped(rel, "quarantined", f"image has no row in {params.table}")
