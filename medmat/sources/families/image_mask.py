"""Images paired with mask files: by name (<stem><mask_suffix>.<ext>, same or parallel folder), or by templates.

Template mode (`image_regex` + `mask_paths`) covers archives that keep a mask folder beside each split's image
folder (train/Original -> train/Ground truth) or name each class's mask with its own suffix (<stem>-1-Disc-T.png):
a regex on the image's relative path captures parts (split, stem, ...) and one path template per label rebuilds
each mask path from them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field, model_validator

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, regex_groups


class ImageMaskParams(AdapterParams):
    image_dirs: list[str] = Field(default=[], description="folders holding the images (default: anywhere)")
    mask_dir: str | None = Field(default=None, description="folder holding the masks (default: anywhere)")
    mask_dirs: dict[str, str] = Field(default={}, description="label -> folder, when each label has its own masks")
    mask_suffix: str = Field(default="", description="added to the image stem to name its mask, e.g. _mask")
    mask_extensions: list[str] = Field(default=[], description="mask file extensions (default: `extensions`)")
    multiple_masks: bool = Field(default=False, description="also pair <stem><suffix>_<n> masks (one lesion each)")
    mask_invert: bool = Field(default=False, description="the object is dark in the mask")
    label: str | None = Field(default=None, description="the one object class, when the source has one")
    label_from: Literal["fixed", "folder", "mask_dirs"] = "fixed"
    label_level: int = -1
    split_from: Literal["folder"] | None = None
    split_level: int = 0
    split_names: dict[str, str] = {}
    unmasked: Literal["quarantine", "keep"] = Field(
        default="quarantine", description="images without a mask: bad input, or kept as having no object"
    )
    image_regex: str | None = Field(
        default=None, description="template mode: regex on an image's relative path; its named groups fill "
        "mask_paths, and groups `split` and `group` give the original split and patient id")
    mask_paths: dict[str, str] = Field(
        default={}, description="template mode: label -> mask path template, e.g. '{split}/Ground truth/{stem}.png'")

    @model_validator(mode="after")
    def _label_source(self) -> "ImageMaskParams":
        if bool(self.image_regex) != bool(self.mask_paths):
            raise ValueError("template mode needs both `image_regex` and `mask_paths`")
        if self.mask_paths:
            return self
        if self.label_from == "fixed" and not self.label:
            raise ValueError("label_from: fixed needs `label` (the object class)")
        if self.label_from == "mask_dirs" and not self.mask_dirs:
            raise ValueError("label_from: mask_dirs needs `mask_dirs` (label -> folder)")
        return self


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _in(rel: str, folder: str | None) -> bool:
    return folder is None or rel.startswith(folder.rstrip("/") + "/")


def _images_not_masks(walk: Walk, params: ImageMaskParams, mask_files: set[str]) -> Iterator[str | Skipped]:
    """Every file of the walk but the masks (each is consumed by its image), in sorted order; a file the walk
    itself skipped comes as its Skipped."""
    for rel, skipped in iter_images(walk, params):
        if rel not in mask_files:
            yield skipped or rel


def iter_image_mask(root: Path, params: ImageMaskParams) -> Iterator[Entry]:
    if params.mask_paths:
        yield from _iter_templates(root, params)
        return
    walk = Walk.of(root)
    mask_exts = [e.lower().lstrip(".") for e in (params.mask_extensions or params.extensions)]
    suffix = re.escape(params.mask_suffix)
    numbered = r"(?:_\d+)?" if params.multiple_masks else ""
    mask_pattern = re.compile(rf"^(?P<stem>.+?){suffix}{numbered}\.(?:{'|'.join(map(re.escape, mask_exts))})$",
                              re.IGNORECASE)
    mask_folders = list(params.mask_dirs.values()) or [params.mask_dir]

    # Index candidate masks by (folder-of-label, stem).
    masks: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    mask_files: set[str] = set()
    for rel in walk.files:
        name = rel.rsplit("/", 1)[-1]
        match = mask_pattern.match(name)
        if not match or (params.mask_suffix == "" and params.mask_dir is None and not params.mask_dirs):
            continue
        for folder in mask_folders:
            if _in(rel, folder):
                masks[(folder, match.group("stem"))].append(rel)
                mask_files.add(rel)

    # Masks found by stem in another folder: two images of one stem cannot be told apart (each would take the
    # other's mask), so both are quarantined, like a name found N times in a name-matched table.
    cross_folder = params.mask_dir is not None or bool(params.mask_dirs)
    stems: dict[str, list[str]] = defaultdict(list)
    if cross_folder:
        for rel, skipped in iter_images(walk, params):
            if not skipped and rel not in mask_files and (
                    not params.image_dirs or any(_in(rel, d) for d in params.image_dirs)):
                stems[_stem(rel.rsplit("/", 1)[-1])].append(rel)
    ambiguous = {stem: rels for stem, rels in stems.items() if len(rels) > 1}

    used_masks: set[str] = set()
    for rel in _images_not_masks(walk, params, mask_files):
        if isinstance(rel, Skipped):
            yield rel
            continue
        if params.image_dirs and not any(_in(rel, d) for d in params.image_dirs):
            yield Skipped(rel, "excluded", f"outside layout.params.image_dirs {params.image_dirs}")
            continue
        folders, name = rel.split("/")[:-1], rel.split("/")[-1]
        if _stem(name) in ambiguous:
            others = ambiguous[_stem(name)]
            yield Skipped(rel, "quarantined", f"image name stem {_stem(name)!r} found {len(others)} times "
                          f"({', '.join(others)}): its mask (matched by name) cannot be told apart")
            continue
        groups = regex_groups(params.filename_regex, name)
        if groups is None:
            yield Skipped(rel, "quarantined", f"file name does not match filename_regex {params.filename_regex!r}")
            continue
        stem = _stem(name)
        pairs: list[tuple[str, str]] = []
        if params.mask_dirs:
            for label, folder in sorted(params.mask_dirs.items()):
                pairs += [(label, m) for m in sorted(masks.get((folder, stem), []))]
        else:
            label = params.label if params.label_from == "fixed" else (
                folders[params.label_level] if len(folders) >= abs(params.label_level) else None)
            if label is None:
                yield Skipped(rel, "quarantined", f"no label folder at level {params.label_level}")
                continue
            candidates = masks.get((params.mask_dir, stem), [])
            if params.mask_dir is None:  # same folder as the image
                parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
                candidates = [m for m in candidates if (m.rsplit("/", 1)[0] if "/" in m else "") == parent]
            pairs = [(label, m) for m in sorted(candidates)]
        names = [(label, m.rsplit("/", 1)[-1]) for label, m in pairs]  # one label's folder may hold a name once
        if len(set(names)) < len(names):
            twice = sorted({pair[1] for pair in names if names.count(pair) > 1})
            yield Skipped(rel, "quarantined", f"mask name(s) {twice} found more than once "
                          f"({', '.join(m for _, m in pairs)}): which one is this image's cannot be told")
            continue
        if not pairs and params.unmasked == "quarantine":
            yield Skipped(rel, "quarantined", "image has no mask file")
            continue
        used_masks.update(m for _, m in pairs)
        split = None
        if params.split_from == "folder" and len(folders) > params.split_level:
            split = params.split_names.get(folders[params.split_level], folders[params.split_level])
        labels = tuple(dict.fromkeys(label for label, _ in pairs)) or (
            (params.label,) if params.label_from == "fixed" else ())
        group = groups.get("group") or (regex_groups(params.group_from_regex, rel) or {}).get("group")
        yield RawItem(key=rel, paths=(rel,), source_labels=labels, group_id=group,
                      original_split=groups.get("split", split), masks=tuple(pairs), mask_invert=params.mask_invert)

    for rel in sorted(mask_files - used_masks):
        match = mask_pattern.match(rel.rsplit("/", 1)[-1])
        if match and match.group("stem") in ambiguous:
            yield Skipped(rel, "quarantined", f"mask of image stem {match.group('stem')!r}, found "
                          f"{len(ambiguous[match.group('stem')])} times")
        else:
            yield Skipped(rel, "quarantined", "mask file without a matching image")


def _iter_templates(root: Path, params: ImageMaskParams) -> Iterator[Entry]:
    walk = Walk.of(root)
    present = set(walk.files)
    pattern = re.compile(params.image_regex)

    # First pass: every image the regex accepts, with the masks its templates name that exist.
    plan: dict[str, tuple[dict[str, str], list[tuple[str, str]]]] = {}
    for rel, skipped in iter_images(walk, params):
        match = None if skipped else pattern.search(rel)
        if match is None:
            continue
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
        pairs = [(label, path) for label, template in sorted(params.mask_paths.items())
                 if (path := template.format(**groups)) in present and path != rel]
        plan[rel] = (groups, pairs)
    mask_files = {path for _, pairs in plan.values() for _, path in pairs}

    # Second pass: every file once, in sorted order; a mask is consumed by its image.
    for rel in _images_not_masks(walk, params, mask_files):
        if isinstance(rel, Skipped):
            yield rel
            continue
        if rel not in plan:
            yield Skipped(rel, "quarantined", f"matches neither image_regex {params.image_regex!r} nor any image's "
                          "mask path")
            continue
        groups, pairs = plan[rel]
        if not pairs and params.unmasked == "quarantine":
            expected = sorted(t.format(**groups) for t in params.mask_paths.values())
            yield Skipped(rel, "quarantined", f"image has no mask file (looked for {expected})")
            continue
        split = groups.get("split")
        group = groups.get("group") or (regex_groups(params.group_from_regex, rel) or {}).get("group")
        yield RawItem(key=rel, paths=(rel,), source_labels=tuple(dict.fromkeys(label for label, _ in pairs)),
                      group_id=group, original_split=params.split_names.get(split, split) if split else None,
                      masks=tuple(pairs), mask_invert=params.mask_invert)
