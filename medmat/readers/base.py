"""What every reader returns, and the error every reader raises for a file it cannot use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Refuse anything larger before decoding: 100k x 100k "images" are decompression bombs, not data.
DEFAULT_MAX_PIXELS = 400_000_000


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


def check_pixel_count(path, *dims: int, limit: int = DEFAULT_MAX_PIXELS) -> None:
    total = 1
    for d in dims:
        total *= max(int(d), 1)
    if total > limit:
        shape = " x ".join(str(int(d)) for d in dims)
        raise ReadError(path, "too many pixels", f"{shape} = {total:,} > limit {limit:,}",
                        "raise --max-pixels if this size is genuine")


def to_uint8_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear display window (DICOM PS3.3 C.11.2.1.2, simplified): [c - w/2, c + w/2] -> [0, 255]."""
    width = max(float(width), 1e-6)
    low = center - width / 2.0
    scaled = (values.astype(np.float64) - low) / width * 255.0
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
