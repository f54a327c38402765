"""SICAPv2 (Gleason masks): patches listed in per-split xlsx tables with one-hot labels, each with a mask file.

No family both reads a label table and pairs masks: label-table has no masks, image-mask reads no table. Here each
split's table (partition/Test/Train.xlsx, Test.xlsx) gives a patch's labels and split; its mask is the first of
`mask_paths` that exists (public loaders disagree on the mask extension). Patches listed in no table are excluded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, regex_groups
from ..tables import TableSpec, read_table, require_columns


class Params(AdapterParams):
    tables: dict[str, str] = Field(min_length=1, description="split name -> label table (xlsx), relative to the root")
    path_column: str
    path_template: str = Field(default="{}", description="how a path cell becomes a relative path")
    label_columns: list[str] = Field(min_length=1, description="one-hot columns, named by the label they stand for")
    positive_values: list[str] = ["1", "1.0"]
    negative_values: list[str] = Field(default=["0", "0.0"], description="one-hot values meaning 'absent'; a cell "
                                       "in neither list quarantines its patch")
    mask_paths: list[str] = Field(min_length=1, description="mask path templates tried in order; {stem} is the "
                                                            "image file name without its extension")


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    walk = Walk.of(root)
    present = set(walk.files)

    # Rows of every split table, in split then row order: image -> (split, labels, where).
    rows: dict[str, tuple[str, list[str], str]] = {}
    odd_rows: set[str] = set()  # quarantined above for a value no list names
    for split, table in sorted(params.tables.items()):
        frame = read_table(root, TableSpec(table=table))
        require_columns(frame, [params.path_column, *params.label_columns], table)
        for index, row in frame.iterrows():
            rel = params.path_template.format(str(row[params.path_column]).strip())
            where = f"{table} row {index + 2}"
            if rel in rows:
                yield Skipped(rel, "quarantined", f"{where} repeats an image already listed in {rows[rel][2]}")
                continue
            cells = {c: str(row[c]).strip() for c in params.label_columns}
            odd = {c: v for c, v in cells.items() if v not in params.positive_values + params.negative_values}
            if odd:
                yield Skipped(rel, "quarantined", f"{where}: one-hot value(s) {odd} are in neither positive_values "
                              f"{params.positive_values} nor negative_values {params.negative_values}")
                rows[rel] = (split, [], where)
                odd_rows.add(rel)
                continue
            labels = [c for c in params.label_columns if cells[c] in params.positive_values]
            rows[rel] = (split, labels, where)

    def mask_of(rel: str) -> str | None:
        stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return next((m for t in params.mask_paths if (m := t.format(stem=stem)) in present and m != rel), None)

    # Masks of every patch (listed or not) go with their patch: a skipped patch takes its mask along.
    masks = {rel: mask_of(rel) for rel, skipped in iter_images(walk, params) if skipped is None}
    used = {m for m in masks.values() if m}

    def with_mask(entry: Skipped, rel: str) -> Iterator[Skipped]:
        # A patch that is not built takes its mask along, and says so (the ledger counts every file).
        yield entry
        if masks.get(rel):
            yield Skipped(masks[rel], "excluded", f"mask of {rel}, which is not built ({entry.kind})")

    for rel, skipped in iter_images(walk, params):
        if rel in used:
            continue
        if skipped:
            yield from with_mask(skipped, rel)
            continue
        if rel not in rows:  # about a third of the patches are in neither table of the official partition
            yield from with_mask(Skipped(rel, "excluded", "not listed in the partition tables "
                                         f"{sorted(params.tables.values())}"), rel)
            continue
        split, labels, where = rows[rel]
        if rel in odd_rows:
            if masks.get(rel):
                yield Skipped(masks[rel], "excluded", f"mask of {rel}, which is not built (quarantined)")
            continue
        if not labels:
            yield from with_mask(Skipped(rel, "quarantined", f"{where} has no label"), rel)
            continue
        if masks[rel] is None:
            yield Skipped(rel, "quarantined", "image has no mask file")
            continue
        group = (regex_groups(params.group_from_regex, rel) or {}).get("group")
        # One mask holds every Gleason pattern of the patch; it is tied to the first label (all map to one target).
        yield RawItem(key=rel, paths=(rel,), source_labels=tuple(labels), group_id=group, original_split=split,
                      masks=((labels[0], masks[rel]),))

    for rel in sorted(set(rows) - present - odd_rows):
        yield Skipped(rel, "quarantined", f"{rows[rel][2]} names a file that is missing")
