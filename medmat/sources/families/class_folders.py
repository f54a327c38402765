"""<root>/[<split>/]<label>/[...]/<image>: the label is a folder name (or a filename pattern)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field, model_validator

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, regex_groups


class ClassFoldersParams(AdapterParams):
    label_from: Literal["folder", "filename"] = "folder"
    default_label: str | None = Field(
        default=None, description="with label_from: filename, the label of files whose name has no `label` group")
    label_level: int = Field(default=-1, description="which folder (index into the relative folders; -1 = parent)")
    split_from: Literal["folder"] | None = None
    split_level: int = Field(default=0, description="which folder holds the split name, when split_from: folder")
    split_names: dict[str, str] = Field(
        default={}, description="folder name -> split name (e.g. val: validation); unlisted folders keep their name"
    )

    @model_validator(mode="after")
    def _default_label_is_not_a_catch_all(self) -> "ClassFoldersParams":
        # default_label absorbs only the names an anchored filename_regex spells out (its `label` group
        # optional); any other name is quarantined. Without such a regex it would label every file.
        if self.default_label is not None:
            pattern = self.filename_regex or ""
            if self.label_from != "filename" or not (pattern.startswith("^") and pattern.endswith("$")):
                raise ValueError("default_label needs label_from: filename and a filename_regex anchored with ^...$ "
                                 "spelling out the names it may absorb (no catch-all)")
        return self


def iter_class_folders(root: Path, params: ClassFoldersParams) -> Iterator[Entry]:
    for rel, skipped in iter_images(Walk.of(root), params):
        if skipped:
            yield skipped
            continue
        folders = rel.split("/")[:-1]
        name = rel.split("/")[-1]
        groups = regex_groups(params.filename_regex, name)
        if groups is None:
            yield Skipped(rel, "quarantined", f"file name does not match layout.params.filename_regex "
                          f"{params.filename_regex!r}")
            continue
        if params.label_from == "folder":
            try:
                label = folders[params.label_level]
            except IndexError:
                yield Skipped(rel, "quarantined", f"no label folder at level {params.label_level}")
                continue
        else:
            label = groups.get("label", params.default_label)
            if label is None:
                yield Skipped(rel, "quarantined", "filename_regex has no `label` group match")
                continue
        split = None
        if params.split_from == "folder":
            split = folders[params.split_level] if len(folders) > params.split_level else None
            split = params.split_names.get(split, split)
        split = groups.get("split", split)
        group = groups.get("group")
        if group is None and params.group_from_regex:
            group = (regex_groups(params.group_from_regex, rel) or {}).get("group")
        yield RawItem(key=rel, paths=(rel,), source_labels=(label,), group_id=group, original_split=split)
