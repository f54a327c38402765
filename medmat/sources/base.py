"""What an adapter yields: raw items to build, and files it saw but will not build (with the reason).

An adapter only describes and locates: it walks a source folder and label files and yields, in a stable order,
either a `RawItem` or a `Skipped`. Reading pixels, mapping labels and writing are the builder's job.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OS_METADATA = ("__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini", ".AppleDouble", ".Spotlight-V100", ".Trashes")


@dataclass(frozen=True)
class RawBox:
    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


@dataclass(frozen=True)
class RawItem:
    """One sample as the source describes it. `key` is unique within the source and stable across runs."""

    key: str
    paths: tuple[str, ...]  # one image, or the slices of one DICOM series (relative to the source folder)
    source_labels: tuple[str, ...]
    group_id: str | None = None
    original_split: str | None = None
    boxes: tuple[RawBox, ...] = ()
    # Segmentation: (label, mask path) pairs; one mask file per label, or one shared file for a single label.
    masks: tuple[tuple[str, str], ...] = ()
    mask_invert: bool = False
    # 3D segmentation from DICOM: the mask slices of the series (label = the single source label).
    mask_series: tuple[str, ...] = ()
    # Run-length-encoded masks: (label, rle string) pairs, with the encoding named in `rle_order`.
    rles: tuple[tuple[str, str], ...] = ()
    rle_order: str | None = None
    meta: tuple[tuple[str, Any], ...] = ()


def item_labels(item: RawItem) -> tuple[str, ...]:
    """Every source label an item carries: its own, then those of its boxes, masks and run-length masks (an
    annotation label the manifest does not list is as unknown as an image label, and quarantines the item)."""
    return tuple(dict.fromkeys((*item.source_labels, *(b.label for b in item.boxes),
                                *(label for label, _ in item.masks), *(label for label, _ in item.rles))))


@dataclass(frozen=True)
class Skipped:
    """A file (or label row) seen but not built. `quarantine` is bad input; `excluded` follows a stated rule."""

    path: str
    kind: Literal["quarantined", "excluded"]
    reason: str


Entry = RawItem | Skipped


_PATH_FIELDS = {"table", "image_dirs", "image_dir", "mask_dir", "image_subdir", "mask_subdir", "images_dir",
                "masks_dir", "annotations", "annotation_file"}


class AdapterParams(BaseModel):
    """Parameters every family understands. Unknown keys are refused so that typos surface in `validate`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extensions: list[str] = Field(min_length=1, description="image file extensions, without the dot")
    exclude_regex: str | None = Field(default=None, description="relative paths matching this are excluded")
    filename_regex: str | None = Field(
        default=None, description="regex on the file name; named groups `label`, `group`, `split` are used if present"
    )
    group_from_regex: str | None = Field(
        default=None, description="regex on the relative path whose group `group` is the patient/study id"
    )

    @model_validator(mode="after")
    def _paths_inside(self) -> "AdapterParams":
        """Every path a family parameter names (tables, image folders) stays inside the source folder."""
        def check(value, where: str) -> None:
            if isinstance(value, str):
                if value.startswith(("/", "~", "\\")) or ".." in value.replace("\\", "/").split("/"):
                    raise ValueError(f"layout.params.{where}: {value!r} must be a relative path inside the source "
                                     "folder (no leading /, ~ or ..)")
            elif isinstance(value, (list, tuple)):
                for i, v in enumerate(value):
                    check(v, f"{where}[{i}]")
            elif isinstance(value, BaseModel):
                for key in type(value).model_fields:
                    if key in _PATH_FIELDS:
                        check(getattr(value, key), f"{where}.{key}")
                    elif key == "tables" or isinstance(getattr(value, key), BaseModel):
                        check(getattr(value, key), f"{where}.{key}")
        for key in type(self).model_fields:
            value = getattr(self, key)
            if key in _PATH_FIELDS or key == "tables" or isinstance(value, BaseModel):
                check(value, key)
        return self

    def is_image(self, path: str) -> bool:
        lower = path.lower()
        return any(lower.endswith("." + ext.lower().lstrip(".")) for ext in self.extensions)


@dataclass
class Walk:
    """Regular files under a folder, relative, sorted. Hidden files, OS metadata, links and special files are left
    out here; the build's ledger (`medmat.sources.ledger`) reports each of them as excluded by its rule."""

    root: Path
    files: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, root: Path) -> "Walk":
        found = []
        for folder, dirs, files in os.walk(root, followlinks=False):
            base = Path(folder)
            for name in files:
                path = base / name
                rel = path.relative_to(root).as_posix()
                if any(part.startswith(".") or part in OS_METADATA for part in rel.split("/")):
                    continue
                try:
                    mode = path.lstat().st_mode
                except OSError:
                    continue
                if stat.S_ISREG(mode) and utf8_name(rel):  # never a link (it may point outside) nor a device
                    found.append(rel)
        return cls(root=root, files=sorted(found))


def utf8_name(rel: str) -> bool:
    """Whether a path decoded from the file system is valid UTF-8 (else Python holds it with surrogate escapes, and
    it can be neither stored in Parquet nor matched against a label table). The ledger quarantines the others."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(rel: str) -> str:
    """A path fit for reports: undecodable bytes written as \\xNN."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def regex_groups(pattern: str | None, text: str) -> dict[str, str] | None:
    """Named groups of `pattern` matched against `text`; None if the pattern is set and does not match."""
    if pattern is None:
        return {}
    match = re.search(pattern, text)
    return None if match is None else {k: v for k, v in match.groupdict().items() if v is not None}


def listed_file(rel: str, images: dict[str, "Skipped | None"], where: str) -> "Skipped | None":
    """For a label row naming `rel` (`where` says which row): why it cannot become an item - its file is missing,
    or the file was itself skipped (not an image, excluded by a rule) - or None when it is a usable image."""
    if rel.startswith("/") or ".." in rel.split("/"):
        return Skipped(rel, "quarantined", f"{where} names a path outside the source folder (never opened)")
    if rel not in images:
        return Skipped(rel, "quarantined", f"{where} names a file that is missing")
    return images[rel]


def iter_images(walk: Walk, params: AdapterParams) -> Iterator[tuple[str, Skipped | None]]:
    """Every file under the walk: (relative path, None) for images to use, or a Skipped for the rest."""
    for rel in walk.files:
        if params.exclude_regex and re.search(params.exclude_regex, rel):
            yield rel, Skipped(rel, "excluded", f"matches layout.params.exclude_regex {params.exclude_regex!r}")
        elif not params.is_image(rel):
            yield rel, Skipped(rel, "excluded", f"not an image extension {params.extensions}")
        else:
            yield rel, None
