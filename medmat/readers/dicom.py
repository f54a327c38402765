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

from .base import DEFAULT_MAX_PIXELS, Decoded, ReadError, View, check_pixel_count, robust_window, to_uint8_window
from .volume import canonical, middle_slice_view

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _open(path: Path, stop_before_pixels: bool = False) -> pydicom.Dataset:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ReadError(path, "corrupt DICOM", str(exc), "re-download the source") from exc
    if "Rows" not in ds or "Columns" not in ds:
        raise ReadError(path, "not a DICOM image", "no Rows/Columns", "check the file is an image object")
    if not stop_before_pixels and not any(tag in ds for tag in _PIXEL_TAGS):
        raise ReadError(path, "DICOM without pixel data", "no (7FE0,0010) element",
                        "this object holds no image (e.g. a structured report); exclude it in the manifest")
    return ds


def _frames(ds: pydicom.Dataset, path: Path, max_pixels: int) -> np.ndarray:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    check_pixel_count(path, ds.Rows, ds.Columns, frames, limit=max_pixels)
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


def read_dicom(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    path = Path(path)
    ds = _open(path)
    arr = _frames(ds, path, max_pixels)
    photometric = str(ds.get("PhotometricInterpretation", ""))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spacing = tuple(float(s) for s in ds.get("PixelSpacing", []) or ())[::-1]  # DICOM gives (row, column)

    if photometric.startswith(("RGB", "YBR")) or photometric == "PALETTE COLOR" or arr.ndim == 3 + (frames > 1):
        # Colour: pydicom already converted YBR to RGB; keep the (middle) frame as 8-bit RGB.
        if photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            arr = apply_color_lut(arr, ds)
        frame = arr[frames // 2] if frames > 1 else arr
        if frame.dtype != np.uint8:
            frame = to_uint8_window(frame, *robust_window(frame))
        view = View(axis="frame", index=frames // 2) if frames > 1 else None
        return Decoded(pixels=np.ascontiguousarray(frame), source_format="dcm", spacing=spacing, view=view,
                       meta={"photometric": photometric, "frames": frames})

    values = apply_modality_lut(arr, ds)
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


def read_dicom_series(paths: list[Path], max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    """Slices of one series -> one volume, ordered by position along the slice normal, never by file name."""
    if not paths:
        raise ReadError("<empty series>", "empty DICOM series", "", "check the study folder")
    headers = []
    for p in paths:
        ds = _open(Path(p), stop_before_pixels=True)
        key = _slice_position(ds)
        if key is None:
            key = float(ds.get("InstanceNumber", 0) or 0)
        headers.append((key, str(p)))
    headers.sort()
    first = _open(Path(headers[0][1]), stop_before_pixels=True)
    check_pixel_count(headers[0][1], first.Rows, first.Columns, len(headers), limit=max_pixels)

    slices, datasets = [], []
    for _, p in headers:
        ds = _open(Path(p))
        arr = _frames(ds, Path(p), max_pixels)
        if arr.shape != (first.Rows, first.Columns):
            raise ReadError(p, "inconsistent DICOM series", f"slice shape {arr.shape} differs from "
                            f"{(first.Rows, first.Columns)}", "split the series in the adapter")
        slices.append(apply_modality_lut(arr, ds).astype(np.float32 if ds.get("RescaleSlope", 1) != 1 else arr.dtype))
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
    return read_dicom(path, options.max_pixels)
