"""Images listed in label tables: a path column plus one label column, a separated list, or one-hot columns.

One table for the whole source (`table`), or one per official split (`tables`, each with its split and, if its
images live elsewhere, its own `path_template`). An optional second table (`groups`) gives each image its
patient/lesion id. Every file under the root is accounted for: non-images and `exclude_regex` matches are
excluded, rows naming an absent image and images no row names are quarantined (or, with `unlisted: exclude`,
excluded: for archives that ship unlabelled images on purpose).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, listed_file, regex_groups
from ..tables import TableReading, TableSpec, read_table, require_columns


class SplitTable(BaseModel):
    """One label file of a split; it is read with the source-wide reading options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(description="label file, relative to the layout root")
    split: str | None = Field(default=None, description="the official split of every row of this table")
    path_template: str | None = Field(default=None, description="overrides the source-wide path_template")


class GroupTable(TableSpec):
    key_column: str = Field(description="column with the same value as the label tables' path_column")
    group_column: str = Field(description="column with the patient/lesion id (empty cell: no group)")


class LabelTableParams(AdapterParams, TableReading):
    table: str | None = Field(default=None, description="the label file, relative to the layout root")
    tables: list[SplitTable] = Field(default=[], description="one label file per official split, instead of `table`")
    path_column: str
    path_template: str = Field(default="{}", description="how a path cell becomes a relative path, e.g. images/{}.png")
    append_suffix: str | None = Field(default=None, description="added to a path cell that does not already end so")
    image_dirs: list[str] = Field(
        default=[], description="find images by file name anywhere under these folders (for archives split in parts)"
    )
    match_stem: bool = Field(
        default=False, description="with image_dirs: match the path cell to a file's name without its extension "
        "(for tables whose cells omit an extension that varies between images)")
    label_from: Literal["column", "columns"] = "column"
    label_column: str | None = None
    label_separator: str | None = Field(default=None, description="several labels in one cell, e.g. '|'")
    label_format: Literal["plain", "python-list"] = Field(
        default="plain", description="python-list: cells like \"['Mass', 'Asymmetry']\"")
    label_columns: list[str] = Field(default=[], description="one-hot columns, named by the label they stand for")
    positive_values: list[str] = ["1", "1.0", "True", "true"]
    negative_values: list[str] = Field(
        default=["0", "0.0", "False", "false", ""], description="one-hot values meaning 'absent' (a blank cell: not "
        "mentioned, as in CheXpert); a cell in none of positive/negative/uncertain_values quarantines its row")
    uncertain_values: list[str] = Field(default=[], description="one-hot values meaning 'uncertain' (row excluded)")
    all_zero_label: str | None = Field(default=None, description="label of a row with no positive column")
    split_column: str | None = None
    split_names: dict[str, str] = {}
    group_column: str | None = None
    groups: GroupTable | None = Field(default=None, description="a second table mapping images to groups")
    aggregate: bool = Field(default=False, description="several rows per image: union their labels")
    unlisted: Literal["quarantine", "exclude"] = Field(
        default="quarantine", description="images that no row names: bad input, or left out by this stated rule")

    @model_validator(mode="after")
    def _one_way_to_find_tables(self) -> "LabelTableParams":
        if (self.table is None) == (not self.tables):
            raise ValueError("give either `table` (one label file) or `tables` (one per split), not both or neither")
        if self.label_from == "column" and not self.label_column:
            raise ValueError("label_from: column needs `label_column`")
        if self.label_from == "columns" and not self.label_columns:
            raise ValueError("label_from: columns needs `label_columns`")
        return self

    def parts(self) -> list[tuple[SplitTable, TableSpec]]:
        """(table, how to read it) for each label file."""
        reading = {k: getattr(self, k) for k in TableReading.model_fields}
        tables = [SplitTable(table=self.table)] if self.table is not None else self.tables
        return [(t, TableSpec(table=t.table, **reading)) for t in tables]


def _cell_labels(cell: str, params: LabelTableParams) -> list[str]:
    if params.label_format == "python-list":
        try:
            values = ast.literal_eval(cell) if cell else []
        except (ValueError, SyntaxError):
            values = [cell]
        return [str(v).strip() for v in (values if isinstance(values, (list, tuple)) else [values]) if str(v).strip()]
    if params.label_separator:
        return [part.strip() for part in cell.split(params.label_separator) if part.strip()]
    return [cell] if cell else []


def _labels(row, params: LabelTableParams) -> tuple[list[str], str | None, str | None]:
    """(labels, why the row is excluded or None, why it is quarantined or None)."""
    if params.label_from == "column":
        return list(dict.fromkeys(_cell_labels(str(row[params.label_column]).strip(), params))), None, None
    values = {c: str(row[c]).strip() for c in params.label_columns}
    known = {*params.positive_values, *params.negative_values, *params.uncertain_values}
    odd = {c: v for c, v in values.items() if v not in known}
    if odd:
        return [], None, (f"one-hot value(s) {odd} are in none of layout.params positive_values "
                          f"{params.positive_values}, negative_values {params.negative_values} or uncertain_values "
                          f"{params.uncertain_values}")
    uncertain = [c for c, v in values.items() if v in params.uncertain_values]
    if uncertain:
        return [], f"uncertain label(s) {uncertain} (layout.params.uncertain_values)", None
    labels = [c for c, v in values.items() if v in params.positive_values]
    if not labels and params.all_zero_label:
        labels = [params.all_zero_label]
    return labels, None, None


def _group_map(root: Path, spec: GroupTable | None) -> dict[str, str | None]:
    """key -> group id; None for a key the table gives two different groups (which one is right is unknown)."""
    if spec is None:
        return {}
    frame = read_table(root, spec)
    require_columns(frame, [spec.key_column, spec.group_column], spec.table)
    found: dict[str, str | None] = {}
    for key, group in zip(frame[spec.key_column], frame[spec.group_column]):
        key, group = str(key).strip(), str(group).strip()
        if group:
            found[key] = group if found.get(key, group) == group else None
    return found


def _relative_path(cell: str, template: str, params: LabelTableParams) -> str:
    if params.append_suffix and not cell.endswith(params.append_suffix):
        cell += params.append_suffix
    return template.format(cell)


def iter_label_table(root: Path, params: LabelTableParams) -> Iterator[Entry]:
    walk = Walk.of(root)
    images: dict[str, Skipped | None] = dict(iter_images(walk, params))
    by_name: dict[str, list[str]] = defaultdict(list)
    for rel in images:
        if params.image_dirs and any(rel.startswith(d.rstrip("/") + "/") for d in params.image_dirs):
            name = rel.rsplit("/", 1)[-1]
            by_name[name.rsplit(".", 1)[0] if params.match_stem else name].append(rel)
    group_of = _group_map(root, params.groups)

    rows: dict[str, dict] = {}
    handled: set[str] = set()  # images whose rows were excluded by a rule
    for part, spec in params.parts():
        frame = read_table(root, spec)
        needed = [params.path_column] + [c for c in (params.label_column, params.split_column, params.group_column)
                                         if c]
        require_columns(frame, needed + list(params.label_columns), part.table)
        template = part.path_template or params.path_template
        for index, row in enumerate(frame.to_dict("records")):  # iterrows is 10x slower
            cell = str(row[params.path_column]).strip()
            rel = _relative_path(cell, template, params)
            where = f"{part.table} row {index + 2}"
            if params.image_dirs:
                hits = by_name.get(rel.rsplit("/", 1)[-1], [])
                if len(hits) > 1:
                    yield Skipped(rel, "quarantined", f"{where}: file name found {len(hits)} times under "
                                  f"{params.image_dirs}")
                    continue
                rel = hits[0] if hits else rel
            labels, excluded, bad = _labels(row, params)
            if bad:
                yield Skipped(rel, "quarantined", f"{where}: {bad}")
                handled.add(rel)
                continue
            if excluded:
                yield Skipped(rel, "excluded", f"{where}: {excluded}")
                handled.add(rel)
                continue
            entry = rows.get(rel)
            if entry is not None and not params.aggregate:
                yield Skipped(rel, "quarantined", f"{where} repeats this image (set layout.params.aggregate: true "
                              "if rows are meant to add labels)")
                continue
            if entry is None:
                entry = rows[rel] = {"labels": [], "split": part.split, "group": None, "where": where}
            entry["labels"] += [lab for lab in labels if lab not in entry["labels"]]
            if params.split_column:
                split = str(row[params.split_column]).strip()
                entry["split"] = params.split_names.get(split, split) or None
            if params.group_column:
                entry["group"] = str(row[params.group_column]).strip() or None
            elif cell in group_of or Path(cell).stem in group_of:
                entry["group"] = group_of.get(cell, group_of.get(Path(cell).stem))
                if entry["group"] is None:
                    entry["conflict"] = (f"{params.groups.table} gives {cell!r} two different "
                                         f"{params.groups.group_column}")

    for rel in sorted(rows):
        entry = rows[rel]
        if rel in handled:
            continue
        problem = listed_file(rel, images, entry["where"])
        if problem is not None:
            yield problem
            continue
        if not entry["labels"]:
            yield Skipped(rel, "quarantined", f"{entry['where']} has no label")
            continue
        if entry.get("conflict"):  # a patient id is what keeps a patient's images in one split
            yield Skipped(rel, "quarantined", entry["conflict"])
            continue
        groups = regex_groups(params.filename_regex, rel.rsplit("/", 1)[-1]) or {}
        group = entry["group"] or groups.get("group") or (
            regex_groups(params.group_from_regex, rel) or {}).get("group")
        yield RawItem(key=rel, paths=(rel,), source_labels=tuple(entry["labels"]), group_id=group,
                      original_split=entry["split"] or groups.get("split"))

    listed = set(rows) | handled
    tables = ", ".join(p.table for p, _ in params.parts())
    for rel, skipped in images.items():
        if rel in listed:
            continue
        if skipped is not None:
            yield skipped
        elif params.unlisted == "exclude":
            yield Skipped(rel, "excluded", f"no row in {tables} (layout.params.unlisted: exclude)")
        else:
            yield Skipped(rel, "quarantined", f"image has no row in {tables}")
