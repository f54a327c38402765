"""CBIS-DDSM (Kaggle JPEG conversion): case-description tables (one row per abnormality, one table per abnormality
type and split) name TCIA DICOM paths <case>/<StudyUID>/<SeriesUID>/000000.dcm; dicom_info.csv maps each series to
its JPEG (image_path) and says whether it is a full mammogram, a cropped ROI or an ROI mask. Items are the full
mammograms, labelled with the abnormality types of their rows; crops and masks are excluded."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, listed_file
from ..tables import TableSpec, read_table, require_columns


class Params(AdapterParams):
    case_tables: dict[str, str] = Field(min_length=1, description="case-description table -> the split it holds")
    path_column: str = Field(description="case-table column with the TCIA DICOM path of the full mammogram")
    series_level: int = Field(default=2, description="which component of that path is the SeriesInstanceUID")
    label_column: str
    group_column: str | None = None
    index_table: str = Field(description="table mapping series to JPEG files (dicom_info.csv)")
    index_path_column: str
    index_prefix: str = Field(default="", description="removed from index_path_column to give the relative path")
    series_column: str
    description_column: str
    full_description: str = Field(description="description_column value of a full mammogram")


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    images = dict(iter_images(Walk.of(root), params))

    # dicom_info.csv: the JPEG of each series' full mammogram, and what every listed JPEG is.
    index = read_table(root, TableSpec(table=params.index_table))
    require_columns(index, [params.index_path_column, params.series_column, params.description_column],
                    params.index_table)
    full_of_series: dict[str, list[str]] = defaultdict(list)
    kind_of: dict[str, str] = {}
    for _, row in index.iterrows():
        rel = str(row[params.index_path_column]).strip().removeprefix(params.index_prefix)
        kind_of[rel] = str(row[params.description_column]).strip()
        if kind_of[rel] == params.full_description:
            full_of_series[str(row[params.series_column]).strip()].append(rel)

    # Case tables: rows of one full mammogram are united (several abnormalities of one type give that type once).
    items: dict[str, dict] = {}
    for table, split in sorted(params.case_tables.items()):
        frame = read_table(root, TableSpec(table=table))
        require_columns(frame, [c for c in (params.path_column, params.label_column, params.group_column) if c], table)
        for i, row in frame.iterrows():
            where = f"{table} row {i + 2}"
            dicom_path = str(row[params.path_column]).strip()
            parts = dicom_path.split("/")
            series = parts[params.series_level] if len(parts) > params.series_level else ""
            found = full_of_series.get(series, [])
            if len(found) != 1:
                yield Skipped(dicom_path, "quarantined", f"{where}: {len(found)} full mammogram images for series "
                              f"{series!r} in {params.index_table}")
                continue
            entry = items.setdefault(found[0], {"labels": [], "split": split, "group": None, "where": where})
            label = str(row[params.label_column]).strip()
            if label and label not in entry["labels"]:
                entry["labels"].append(label)
            if params.group_column:
                entry["group"] = str(row[params.group_column]).strip() or None

    for rel in sorted(items):
        entry = items[rel]
        if (problem := listed_file(rel, images, entry["where"])) is not None:
            yield problem
        elif not entry["labels"]:
            yield Skipped(rel, "quarantined", f"{entry['where']} has no label")
        else:
            yield RawItem(key=rel, paths=(rel,), source_labels=tuple(entry["labels"]), group_id=entry["group"],
                          original_split=entry["split"])

    for rel, skipped in images.items():
        if rel in items:
            continue
        if skipped is not None:
            yield skipped
        elif rel not in kind_of:
            yield Skipped(rel, "quarantined", f"image has no row in {params.index_table}")
        elif kind_of[rel] != params.full_description:
            yield Skipped(rel, "excluded", f"{params.index_table}: {kind_of[rel] or 'no description'}, "
                          "not a full mammogram")
        else:
            yield Skipped(rel, "quarantined", "full mammogram named by no case-description row")
