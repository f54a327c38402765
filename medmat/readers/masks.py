"""Masks read as stored values, never through a display window: 0/1, 0/255 and label-index masks keep their values."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import ReadError, check_size, regular_file
from .registry import ReaderOptions, read_file


def read_mask(path: Path, options: ReaderOptions | None = None) -> np.ndarray:
    """The mask's stored values as a 2D array (a multi-channel mask reduces to its per-pixel maximum)."""
    options = options or ReaderOptions()
    name = Path(path).name.lower()
    if name.endswith((".png", ".bmp", ".gif", ".tif", ".tiff", ".jpg", ".jpeg", ".pgm", ".ppm")):
        from PIL import Image, ImageOps, UnidentifiedImageError

        size = regular_file(path, options.max_bytes)
        try:
            with Image.open(path) as im:
                check_size(path, im.width, im.height, max(len(im.getbands()), 1), limit=options.max_bytes,
                           file_bytes=size)
                im = ImageOps.exif_transpose(im)  # the image is turned upright too: keep them aligned
                # A palette mask's values are its indices (label ids); a 1-bit mask becomes 0/255.
                values = np.asarray(im.convert("L") if im.mode in ("1", "CMYK") else im)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, TypeError) as exc:
            raise ReadError(path, "corrupt mask", str(exc)) from exc
    else:
        decoded = read_file(path, options)  # a DICOM or volume mask: its raw values are in `volume` when 3D
        values = decoded.pixels
    return values if values.ndim == 2 else values.max(axis=2)
