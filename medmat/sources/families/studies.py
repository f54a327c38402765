"""3D studies: a DICOM series per folder, or one volume file (NIfTI, MHA, NRRD) per sample."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field

from ..base import AdapterParams, Entry, RawItem, Skipped, Walk, iter_images, regex_groups


class DicomStudyParams(AdapterParams):
    image_subdir: str = Field(default="", description="folder inside a series folder holding the image slices")
    mask_subdir: str | None = Field(default=None, description="folder inside a series folder holding mask slices")
    label: str = Field(description="the object class (segmentation) or the label of every series")
    group_level: int = Field(default=0, description="which folder of the series path is the patient id")


def iter_dicom_study(root: Path, params: DicomStudyParams) -> Iterator[Entry]:
    """Each folder holding image slices is one series; its mask slices sit in a sibling folder, if any."""
    walk = Walk.of(root)
    series: dict[str, list[str]] = {}
    masks: dict[str, list[str]] = {}
    for rel, skipped in iter_images(walk, params):
        folder = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if skipped:
            yield skipped
            continue
        for kind, sub, store in (("image", params.image_subdir, series), ("mask", params.mask_subdir, masks)):
            if sub is None:
                continue
            if (sub and folder.endswith("/" + sub)) or (sub and folder == sub) or (not sub and kind == "image"):
                base = folder[: -len(sub)].rstrip("/") if sub else folder
                store.setdefault(base, []).append(rel)
                break
        else:
            yield Skipped(rel, "excluded", "not inside an image or mask slice folder")
    for base in sorted(series):
        parts = base.split("/") if base else []
        group = parts[params.group_level] if len(parts) > params.group_level else base or None
        mask_files = sorted(masks.pop(base, []))
        if params.mask_subdir is not None and not mask_files:
            yield Skipped(base or ".", "quarantined", f"series has no {params.mask_subdir}/ slices")
            continue
        yield RawItem(key=base or ".", paths=tuple(sorted(series[base])), source_labels=(params.label,),
                      group_id=group, mask_series=tuple(mask_files))
    for base in sorted(masks):
        yield Skipped(base, "quarantined", "mask slices without an image series")


class VolumeStudyParams(AdapterParams):
    label_from: Literal["fixed", "folder", "filename"] = "fixed"
    label: str | None = None
    label_level: int = -1
    mask_dir: str | None = None
    mask_suffix: str = ""


def iter_volume_study(root: Path, params: VolumeStudyParams) -> Iterator[Entry]:
    walk = Walk.of(root)
    mask_prefix = params.mask_dir.rstrip("/") + "/" if params.mask_dir else None
    for rel, skipped in iter_images(walk, params):
        if mask_prefix and rel.startswith(mask_prefix):
            continue
        if skipped:
            yield skipped
            continue
        name = rel.rsplit("/", 1)[-1]
        groups = regex_groups(params.filename_regex, name) or {}
        folders = rel.split("/")[:-1]
        label = {"fixed": params.label, "filename": groups.get("label"),
                 "folder": folders[params.label_level] if folders else None}[params.label_from]
        if label is None:
            yield Skipped(rel, "quarantined", "no label for this volume")
            continue
        masks = ()
        if mask_prefix:
            stem = name.split(".", 1)[0]
            suffix = name[len(stem):]
            mask = f"{mask_prefix}{stem}{params.mask_suffix}{suffix}"
            if mask not in walk.files:
                yield Skipped(rel, "quarantined", f"mask {mask} is missing")
                continue
            masks = ((label, mask),)
        yield RawItem(key=rel, paths=(rel,), source_labels=(label,), group_id=groups.get("group"), masks=masks)
