"""COVID-CT (UCSD-AI4H): class folders under Images-processed/, official split given by text lists.

The label is the class folder (CT_COVID, CT_NonCOVID) right under `images_dir`. The split comes from
`split_dir`/<class>/<split>CT_<class>.txt, one image file name per line; images in no list have no split.
Everything else in the repository archive (code, README, the inner zips, the lists) is seen and excluded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images


class Params(AdapterParams):
    images_dir: str = Field(default="Images-processed", description="folder holding one folder per class")
    split_dir: str = Field(default="Data-split", description="folder holding the split lists")
    split_list_regex: str = Field(
        default=r"^(?P<split>train|val|test)(?P<label>CT_\w+)\.txt$",
        description="regex on a list's file name; groups `split` and `label` (the class folder it lists)",
    )


def _split_lists(root: Path, params: Params) -> dict[tuple[str, str], str | None]:
    """(class folder, file name) -> split; None when two lists disagree."""
    splits: dict[tuple[str, str], str | None] = {}
    lists = Walk.of(root / params.split_dir).files if (root / params.split_dir).is_dir() else []
    for rel in lists:
        match = re.search(params.split_list_regex, rel.rsplit("/", 1)[-1])
        if match is None:
            continue
        text = (root / params.split_dir / rel).read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            key = (match["label"], line.strip())
            if key[1]:
                splits[key] = match["split"] if splits.get(key, match["split"]) == match["split"] else None
    return splits


def iter_items(root: Path, params: Params) -> Iterator[Entry]:
    splits = _split_lists(root, params)
    prefix = params.images_dir.strip("/") + "/"
    for rel, skipped in iter_images(Walk.of(root), params):
        if skipped:
            yield skipped
            continue
        if not rel.startswith(prefix):
            yield Skipped(rel, "excluded", f"image outside {prefix} (not part of the dataset)")
            continue
        parts = rel[len(prefix):].split("/")
        if len(parts) < 2:
            yield Skipped(rel, "quarantined", f"image directly in {prefix}, not in a class folder")
            continue
        label, name = parts[0], parts[-1]
        if (label, name) in splits and splits[(label, name)] is None:
            yield Skipped(rel, "quarantined", f"listed in two different split lists under {params.split_dir}/")
            continue
        yield RawItem(key=rel, paths=(rel,), source_labels=(label,), original_split=splits.get((label, name)))
