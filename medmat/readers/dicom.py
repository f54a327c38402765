"""DICOM through pydicom: single images, multi-frame objects and series of slices.

Pixel values go through the modality LUT (rescale slope/intercept, e.g. to Hounsfield units). The stored 2D image
is the display image: the file's own VOI window (or VOI LUT) when it has one, else a robust percentile window;
MONOCHROME1 is inverted so that bright means dense everywhere. Compressed transfer syntaxes decode through the
pylibjpeg plugins pydicom documents (JPEG, JPEG-LS, JPEG 2000, RLE).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from .base import (DEFAULT_MAX_BYTES, Decoded, ReadError, View, check_finite, check_size, finite_number, regular_file,
                   robust_window, to_uint8_window)
from .volume import canonical, middle_slice_view

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _open(path: Path, stop_before_pixels: bool = False, max_bytes: int | None = None) -> pydicom.Dataset:
    regular_file(path, max_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            OverflowError) as exc:
        raise ReadError(path, "corrupt DICOM", str(exc), "re-download the source") from exc
    try:
        if "Rows" not in ds or "Columns" not in ds:
            raise ReadError(path, "not a DICOM image", "no Rows/Columns", "check the file is an image object")
        _check_header_numbers(path, ds)
    except ReadError:
        raise
    except Exception as exc:  # a malformed element surfaces only when pydicom parses it
        raise ReadError(path, "corrupt DICOM", f"{type(exc).__name__}: {exc}", "re-download the source") from exc
    if not stop_before_pixels and not any(tag in ds for tag in _PIXEL_TAGS):
        raise ReadError(path, "DICOM without pixel data", "no (7FE0,0010) element",
                        "this object holds no image (e.g. a structured report); exclude it in the manifest")
    return ds


def _numbers(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (pydicom.multival.MultiValue, list, tuple)) else [value]


def _check_header_numbers(path: Path, ds: pydicom.Dataset) -> None:
    """Slope, intercept, window and spacing must be finite numbers (widths and spacings positive): a NaN slope or
    window gives a blank image, a NaN spacing a meaningless volume. Quarantined, never repaired."""
    for key, positive in (("RescaleSlope", False), ("RescaleIntercept", False), ("WindowCenter", False),
                          ("WindowWidth", True), ("PixelSpacing", True), ("SliceThickness", False),
                          ("SpacingBetweenSlices", False)):
        if key in ds:
            what = {"RescaleSlope": "rescale slope", "RescaleIntercept": "rescale intercept",
                    "WindowCenter": "window centre", "WindowWidth": "window width"}.get(key, "spacing")
            for value in _numbers(ds.get(key)):
                if value is None or value == "":
                    continue
                finite_number(path, value, what, positive=positive)
    if "RescaleSlope" in ds and ds.get("RescaleSlope") not in (None, "") and float(ds.RescaleSlope) == 0:
        raise ReadError(path, "invalid rescale slope", "slope 0 maps every pixel to the intercept (a blank image)",
                        "fix the header or exclude the file")
    for key in ("ImagePositionPatient", "ImageOrientationPatient"):
        for value in _numbers(ds.get(key)):
            finite_number(path, value, "patient position/orientation")


def _itemsize(ds: pydicom.Dataset) -> int:
    if "DoubleFloatPixelData" in ds:
        return 8
    if "FloatPixelData" in ds:
        return 4
    return max(int(ds.get("BitsAllocated", 8) or 8) // 8, 1)


def _frames(ds: pydicom.Dataset, path: Path, max_bytes: int) -> np.ndarray:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    check_size(path, ds.Rows, ds.Columns, frames, int(ds.get("SamplesPerPixel", 1) or 1), limit=max_bytes,
               file_bytes=path.stat().st_size, itemsize=_itemsize(ds))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types from its decoder plugins
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown transfer syntax")
        raise ReadError(path, "undecodable DICOM pixels", f"{name}: {str(exc).splitlines()[0]}",
                        "install the decoder plugin pydicom names for this transfer syntax") from exc
    return arr


def _display(ds: pydicom.Dataset, values: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, View]:
    """Grey values (after modality LUT) -> uint8 display image and the window used."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        center = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
        width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        image = to_uint8_window(values, center, width)
    elif "VOILUTSequence" in ds:
        lut = apply_voi_lut(raw, ds).astype(np.float64)
        center, width = robust_window(lut)
        image = to_uint8_window(lut, center, width)
    else:
        center, width = robust_window(values)
        image = to_uint8_window(values, center, width)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        image = 255 - image
    return image, View(window_center=center, window_width=width)


def read_dicom(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Decoded:
    path = Path(path)
    ds = _open(path, max_bytes=max_bytes)
    arr = _frames(ds, path, max_bytes)
    check_finite(path, arr)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spacing = tuple(float(s) for s in ds.get("PixelSpacing", []) or ())[::-1]  # DICOM gives (row, column)

    if photometric.startswith(("RGB", "YBR")) or photometric == "PALETTE COLOR" or arr.ndim == 3 + (frames > 1):
        # Colour: pydicom already converted YBR to RGB; keep the (middle) frame as 8-bit RGB.
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            if "RedPaletteColorLookupTableData" not in ds and "SegmentedRedPaletteColorLookupTableData" not in ds:
                raise ReadError(path, "palette colour without a lookup table", "no (0028,1201) palette data",
                                "the file is incomplete; re-export it or exclude it")
            try:
                arr = apply_color_lut(arr, ds)
            except Exception as exc:
                raise ReadError(path, "invalid palette colour lookup table", str(exc).splitlines()[0],
                                "re-export the file or exclude it") from exc
        frame = arr[frames // 2] if frames > 1 else arr
        if frame.dtype != np.uint8:
            frame = to_uint8_window(frame, *robust_window(frame))
        view = View(axis="frame", index=frames // 2) if frames > 1 else None
        return Decoded(pixels=np.ascontiguousarray(frame), source_format="dcm", spacing=spacing, view=view,
                       meta={"photometric": photometric, "frames": frames})

    try:
        values = apply_modality_lut(arr, ds)
    except Exception as exc:
        raise ReadError(path, "invalid modality LUT", str(exc).splitlines()[0], "fix the header or exclude the file") from exc
    if frames == 1:
        image, view = _display(ds, values, arr)
        return Decoded(pixels=image, source_format="dcm", spacing=spacing, view=view,
                       meta={"photometric": photometric, "modality": str(ds.get("Modality", ""))})

    # Multi-frame greyscale: a volume (frames along z), stored with a diagonal affine from the spacing.
    thickness = float(ds.get("SpacingBetweenSlices", ds.get("SliceThickness", 1.0)) or 1.0)
    col, row = spacing if len(spacing) == 2 else (1.0, 1.0)
    volume = np.transpose(values, (2, 1, 0))  # (frame, row, col) -> (x=col, y=row, z=frame)
    affine = np.diag([col, row, thickness, 1.0])
    return _volume_sample(ds, volume, affine, "dcm", {"frames": frames})


def _volume_sample(ds, volume: np.ndarray, affine: np.ndarray, fmt: str, meta: dict) -> Decoded:
    volume, affine, spacing = canonical(volume, affine)
    center = ds.get("WindowCenter") if ds is not None else None
    width = ds.get("WindowWidth") if ds is not None else None
    window = None
    if center is not None and width is not None:
        first = lambda v: float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v)  # noqa: E731
        window = (first(center), first(width))
    pixels, view = middle_slice_view(volume, window=window)
    if ds is not None and ds.get("PhotometricInterpretation") == "MONOCHROME1":
        pixels = 255 - pixels
    return Decoded(pixels=pixels, source_format=fmt, volume=volume, affine=affine, spacing=spacing, view=view,
                   meta=meta)


def _slice_position(ds: pydicom.Dataset) -> float | None:
    """Distance of a slice along the series normal (row x column direction cosines)."""
    orientation, position = ds.get("ImageOrientationPatient"), ds.get("ImagePositionPatient")
    if orientation is None or position is None:
        return None
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    return float(np.dot(np.cross(row, col), np.array(position, float)))


def read_dicom_series(paths: list[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> Decoded:
    """Slices of one series -> one volume, ordered by position along the slice normal, never by file name.

    Rules: every slice has a position (ImagePositionPatient with ImageOrientationPatient) or none has (then they are
    ordered by InstanceNumber with SliceThickness as spacing); positions must be distinct and evenly spaced (within
    10% of the median step): a repeated position or a gap (a missing slice) is quarantined, never interpolated."""
    if not paths:
        raise ReadError("<empty series>", "empty DICOM series", "", "check the study folder")
    headers = []
    for p in paths:
        ds = _open(Path(p), stop_before_pixels=True, max_bytes=max_bytes)
        headers.append((_slice_position(ds), float(ds.get("InstanceNumber", 0) or 0), str(p)))
    with_position = [h for h in headers if h[0] is not None]
    if with_position and len(with_position) != len(headers):
        missing = next(h[2] for h in headers if h[0] is None)
        raise ReadError(missing, "series slice without ImagePositionPatient",
                        f"{len(headers) - len(with_position)} of {len(headers)} slices have no position",
                        "the series is incomplete; exclude it")
    headers.sort(key=lambda h: (h[0], h[1], h[2]) if with_position else (h[1], h[2]))
    if with_position and len(headers) > 1:
        positions = np.array([h[0] for h in headers])
        steps = np.diff(positions)
        if (steps < 1e-4).any():
            where = int(np.argmax(steps < 1e-4))
            raise ReadError(headers[where + 1][2], "repeated slice position",
                            f"position {positions[where]:.4g} mm appears twice", "remove the duplicate slice")
        median = float(np.median(steps))
        if (np.abs(steps - median) > 0.1 * median).any():
            where = int(np.argmax(np.abs(steps - median) > 0.1 * median))
            raise ReadError(headers[where + 1][2], "uneven slice spacing (a missing slice?)",
                            f"step {steps[where]:.4g} mm where the series steps {median:.4g} mm",
                            "the series is incomplete; re-download it or exclude it")
    first = _open(Path(headers[0][2]), stop_before_pixels=True)
    check_size(headers[0][2], first.Rows, first.Columns, len(headers), limit=max_bytes, itemsize=max(_itemsize(first), 4))

    slices, datasets = [], []
    for _, _, p in headers:
        ds = _open(Path(p), max_bytes=max_bytes)
        arr = _frames(ds, Path(p), max_bytes)
        if arr.shape != (first.Rows, first.Columns):
            raise ReadError(p, "inconsistent DICOM series", f"slice shape {arr.shape} differs from "
                            f"{(first.Rows, first.Columns)}", "split the series in the adapter")
        check_finite(p, arr)
        try:
            values = apply_modality_lut(arr, ds)
        except Exception as exc:
            raise ReadError(p, "invalid modality LUT", str(exc).splitlines()[0], "fix the header") from exc
        slices.append(values.astype(np.float32 if ds.get("RescaleSlope", 1) != 1 else arr.dtype))
        datasets.append(ds)

    stack = np.stack(slices, axis=-1)  # (row, col, slice)
    volume = np.transpose(stack, (1, 0, 2))  # (x=col, y=row, z=slice)
    affine = _series_affine(datasets)
    return _volume_sample(datasets[0], volume, affine, "dcm", {"slices": len(datasets)})


def _series_affine(datasets: list[pydicom.Dataset]) -> np.ndarray:
    """Voxel (col, row, slice) -> RAS mm, from the first and last slice positions (LPS in DICOM)."""
    first = datasets[0]
    orientation = first.get("ImageOrientationPatient")
    spacing = [float(s) for s in first.get("PixelSpacing", [1.0, 1.0])]
    if orientation is None or first.get("ImagePositionPatient") is None:
        thickness = float(first.get("SliceThickness", 1.0) or 1.0)
        return np.diag([spacing[1], spacing[0], thickness, 1.0])
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    origin = np.array(first.ImagePositionPatient, float)
    if len(datasets) > 1:
        step = (np.array(datasets[-1].ImagePositionPatient, float) - origin) / (len(datasets) - 1)
    else:
        step = np.cross(row, col) * float(first.get("SliceThickness", 1.0) or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = row * spacing[1]
    lps[:3, 1] = col * spacing[0]
    lps[:3, 2] = step
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def read_dicom_file(path: Path, options) -> Decoded:
    """The registry's entry point (`medmat.readers.registry`): this reader with a source's ReaderOptions."""
    return read_dicom(path, options.max_bytes)
