"""What every reader returns, and the error every reader raises for a file it cannot use."""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .limits import DEFAULT_MAX_BYTES

# One limit per sample, in bytes of working memory, checked from the header before decoding in whichever process
# decodes the sample (with N workers the peak is at most N times the limit, plus the interpreter). A sample's cost
# is its element count x max(8, 5 x bytes per stored element): the copies decoding, reorienting, windowing, hashing
# and encoding make. Measured (docs/guarantees.md): a 512^3 uint8 .nii.gz (cost 1.07 GB) peaks at 674 MiB RSS, a
# 512^3 float32 one (cost 2.68 GB) at 2.43 GB.
WORKING_BYTES_PER_ELEMENT = 8
COPIES_OF_STORED = 5
# No lossless or JPEG codec here expands data more than deflate's ~1032:1; a header promising more decoded bytes
# than this many times the file's size describes data that is not there (a bomb or a lying header). Small samples
# (below MIN_RATIO_BYTES decoded) are never refused by this rule.
MAX_EXPANSION = 1100
MIN_RATIO_BYTES = 64 * 1024**2
MAX_FRAMES = 4096


class ReadError(Exception):
    """A file that cannot become a sample. `reason` is short and stable (it is counted in reports)."""

    def __init__(self, path: str, reason: str, detail: str = "", fix: str = ""):
        self.path, self.reason, self.detail, self.fix = str(path), reason, detail, fix
        text = f"{path}: {reason}" + (f" ({detail})" if detail else "") + (f"; fix: {fix}" if fix else "")
        super().__init__(text)


@dataclass(frozen=True)
class View:
    """How the stored 2D image was derived from the data: slice of a volume and/or a display window."""

    axis: str | None = None  # "axial" | "coronal" | "sagittal" | "page" for a volume; None for a 2D file
    index: int | None = None
    window_center: float | None = None
    window_width: float | None = None

    def as_row(self) -> dict:
        return {"axis": self.axis, "index": self.index, "window_center": self.window_center,
                "window_width": self.window_width}


@dataclass(frozen=True)
class Decoded:
    """A decoded sample.

    `pixels` is the 2D image a model sees: (H, W) uint8/uint16 or (H, W, 3) uint8.
    `volume` is the 3D array in canonical RAS voxel order with its `affine`, or None for 2D data.
    `passthrough` holds the file's own encoded bytes when they decode to exactly `pixels` (no re-encode needed).
    """

    pixels: np.ndarray
    source_format: str
    volume: np.ndarray | None = None
    affine: np.ndarray | None = None
    spacing: tuple[float, ...] = ()
    view: View | None = None
    passthrough: bytes | None = None
    meta: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def depth(self) -> int | None:
        return None if self.volume is None else int(self.volume.shape[2])


def check_size(path, *dims: int, limit: int = DEFAULT_MAX_BYTES, file_bytes: int | None = None,
               max_ratio: int = MAX_EXPANSION, min_ratio_elements: int = MIN_RATIO_BYTES, itemsize: int = 1) -> int:
    """Refuse, from the header alone, a sample whose working size (elements x max(8, 5 x `itemsize`) bytes) is over
    `limit`, or whose decoded size could not come out of a file of `file_bytes` bytes. Returns the element count."""
    shape = " x ".join(str(int(d)) for d in dims)
    if any(int(d) <= 0 for d in dims):
        raise ReadError(path, "zero dimension", f"shape {shape}", "the header declares an empty image")
    total = math.prod(int(d) for d in dims)
    working = total * max(WORKING_BYTES_PER_ELEMENT, COPIES_OF_STORED * int(itemsize))
    if working > limit:
        raise ReadError(path, "too large", f"{shape} = {total:,} elements, {working:,} working bytes > --max-bytes "
                        f"{limit:,}", "raise --max-bytes if this size is genuine")
    if file_bytes is not None and total > min_ratio_elements and total > max_ratio * max(file_bytes, 1):
        raise ReadError(path, "header promises more data than the file holds",
                        f"{shape} = {total:,} elements from {file_bytes:,} bytes", "re-download the source")
    return total


def check_finite(path, values, what: str = "pixel values") -> None:
    """NaN or inf in pixel data is quarantined: windowing would turn the image blank or saturated."""
    if values.dtype.kind in "fc":
        finite = np.isfinite(values)
        if not finite.all():
            bad = int(values.size - np.count_nonzero(finite))
            raise ReadError(path, f"non-finite {what}", f"{bad:,} NaN/inf of {values.size:,}",
                            "the file holds NaN or infinite values; fix or exclude it")


def finite_number(path, value, what: str, positive: bool = False) -> float:
    """A header number (slope, window, spacing) that must be finite (and > 0 with `positive`)."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ReadError(path, f"invalid {what}", repr(value), "fix the header or exclude the file") from exc
    if not math.isfinite(number) or (positive and number <= 0):
        raise ReadError(path, f"invalid {what}", f"{value!r} is not a finite{' positive' if positive else ''} number",
                        "fix the header or exclude the file")
    return number


def regular_file(path, limit: int | None = None) -> int:
    """The size of `path`, which must be a regular file (not a link, device or FIFO: those are never opened)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ReadError(path, "unreadable file", exc.strerror or str(exc)) from exc
    if stat.S_ISLNK(st.st_mode):
        raise ReadError(path, "symbolic link", "never followed", "copy the file into the source folder")
    if not stat.S_ISREG(st.st_mode):
        raise ReadError(path, "not a regular file", "device, FIFO or socket: never opened")
    if st.st_size == 0:
        raise ReadError(path, "empty file", "0 bytes", "re-download the source")
    if limit is not None and st.st_size > limit:
        raise ReadError(path, "too large", f"the file has {st.st_size:,} bytes > --max-bytes {limit:,}",
                        "raise --max-bytes if this size is genuine")
    return st.st_size


def inside(path, folder) -> bool:
    """Whether `path` resolves (links followed) to a place inside `folder`."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except (OSError, ValueError):
        return False


def to_uint8_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear display window (DICOM PS3.3 C.11.2.1.2, simplified): [c - w/2, c + w/2] -> [0, 255]."""
    width = max(float(width), 1e-6)
    low = center - width / 2.0
    scaled = (np.asarray(values, dtype=np.float64) - low) / width * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def robust_window(values: np.ndarray) -> tuple[float, float]:
    """A window from the 0.5th to the 99.5th percentile, for data that carries none of its own."""
    finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [0.5, 99.5])
    if high <= low:
        low, high = float(finite.min()), float(finite.max()) + 1.0
    return float((low + high) / 2.0), float(high - low)
