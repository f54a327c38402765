"""PNG, JPEG, TIFF (multi-page, 16-bit), BMP and GIF through Pillow."""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .base import (DEFAULT_MAX_BYTES, MAX_EXPANSION, MAX_FRAMES, Decoded, ReadError, View, check_finite, check_size,
                   regular_file)

# Pillow's own bomb check would fire at its global limit; ours is per call, so switch Pillow's off and check first.
Image.MAX_IMAGE_PIXELS = None

_KEEP_MODES = {"L", "RGB", "I;16"}  # stored as they are
_PASSTHROUGH_FORMATS = {"PNG", "JPEG"}
_EXIF_ORIENTATION = 0x0112


def _normalise(im: Image.Image) -> tuple[np.ndarray, bool]:
    """Pixels as L/RGB uint8 or 16-bit grey; returns (array, changed) where changed means not the file's pixels."""
    mode = im.mode
    if mode in _KEEP_MODES:
        return np.asarray(im), False
    if mode in ("I;16B", "I;16L", "I;16N"):
        return np.asarray(im).astype(np.uint16), True
    if mode == "1":
        return np.asarray(im.convert("L")), True
    if mode == "LA":
        return np.asarray(im.convert("L")), True
    if mode == "P":
        # Palette images: grey palettes stay grey, others become RGB.
        rgb = im.convert("RGB")
        arr = np.asarray(rgb)
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
            return np.ascontiguousarray(arr[..., 0]), True
        return arr, True
    if mode in ("I", "F"):
        arr = np.asarray(im)
        check_finite(im.filename or "<image>", arr)
        if mode == "I" and arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16), True
        # Signed or float data: rescale to the full 16-bit range so nothing is clipped.
        arr = arr.astype(np.float64)
        low, high = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - low) / (high - low if high > low else 1.0) * 65535.0
        return np.nan_to_num(np.rint(scaled)).astype(np.uint16), True
    # RGBA, PA, CMYK, YCbCr, LAB, HSV...: alpha carries no diagnostic content in these datasets.
    return np.asarray(im.convert("RGB")), True


def _channels(im: Image.Image) -> int:
    return max(len(im.getbands()), 1)


def _itemsize(im: Image.Image) -> int:
    return 4 if im.mode in ("I", "F") else 2 if im.mode.startswith("I;16") else 1


def read_raster(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Decoded:
    path = Path(path)
    size = regular_file(path, max_bytes)  # the size is checked before a byte is read
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ReadError(path, "unreadable file", str(exc)) from exc
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(raw))
            im.filename = str(path)
            with im:
                fmt = im.format or path.suffix.lstrip(".").upper()
                # JPEG cannot code an 8x8 block in less than a few bits: more than 2000 elements per byte is a
                # header that lies (libjpeg would fill the missing rows with grey, silently). Other formats: deflate's
                # limit, times 8 for 1-bit images.
                ratio = (2000, 1 << 20) if fmt == "JPEG" else (8 * MAX_EXPANSION, 1 << 20)
                check_size(path, im.width, im.height, _channels(im), limit=max_bytes, file_bytes=size,
                           max_ratio=ratio[0], min_ratio_elements=ratio[1], itemsize=_itemsize(im))
                n_frames = getattr(im, "n_frames", 1)
                if n_frames > MAX_FRAMES:
                    raise ReadError(path, "too many frames", f"{n_frames:,} > {MAX_FRAMES:,}",
                                    "split the file, or exclude it")
                check_size(path, im.width, im.height, _channels(im), n_frames, limit=max_bytes, file_bytes=size,
                           itemsize=_itemsize(im))
                frames = []
                for index in range(n_frames):
                    im.seek(index)
                    rotated = index == 0 and im.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1)
                    frame = ImageOps.exif_transpose(im) if rotated else im
                    frame.load()
                    pixels, changed = _normalise(frame)
                    frames.append((pixels, changed or rotated))
    except ReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ReadError(path, "not an image", "Pillow cannot identify the file",
                        "check the file: it may be an HTML error page or another format") from exc
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, IndexError, struct.error,
            MemoryError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ReadError(path, "corrupt image", str(exc), "re-download the source") from exc

    pixels, changed = frames[0]
    if len(frames) == 1:
        passthrough = raw if fmt in _PASSTHROUGH_FORMATS and not changed else None
        return Decoded(pixels=pixels, source_format=fmt.lower(), passthrough=passthrough)

    # Multi-page TIFF: pages of one size become a volume (page axis last); the middle page is the 2D view.
    shapes = {f[0].shape for f in frames}
    if len(shapes) != 1:
        return Decoded(pixels=pixels, source_format=fmt.lower(), meta={"pages": len(frames), "pages_used": 1})
    stack = np.stack([f[0] for f in frames], axis=-1) if pixels.ndim == 2 else None
    middle = len(frames) // 2
    if stack is None:  # RGB pages: keep the middle page; volumes are single-channel
        return Decoded(pixels=frames[middle][0], source_format=fmt.lower(), view=View(axis="page", index=middle),
                       meta={"pages": len(frames)})
    return Decoded(pixels=frames[middle][0], source_format=fmt.lower(), volume=np.ascontiguousarray(stack),
                   affine=np.eye(4), spacing=(1.0, 1.0, 1.0), view=View(axis="page", index=middle),
                   meta={"pages": len(frames)})


def read_raster_file(path: Path, options) -> Decoded:
    """The registry's entry point (`medmat.readers.registry`): this reader with a source's ReaderOptions."""
    return read_raster(path, options.max_bytes)
