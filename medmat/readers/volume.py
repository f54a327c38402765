"""Volumes: NIfTI-1/2 and MGH through nibabel, MHA/MHD/NRRD through SimpleITK.

Every volume is reoriented to the closest canonical orientation (RAS+) with its spacing kept, and is stored as
gzipped NIfTI-1. The 2D view of a volume (what a VQA model sees) follows one documented rule, recorded in the
row's `view`: the axial slice (last canonical axis) at the middle index, or at an index an adapter passes (e.g. the
slice with the largest mask), windowed by the data's own window when it has one, else by the 0.5-99.5th percentile.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from .base import DEFAULT_MAX_PIXELS, Decoded, ReadError, View, check_pixel_count, robust_window, to_uint8_window

NIBABEL_SUFFIXES = (".nii", ".nii.gz", ".mgh", ".mgz", ".hdr")
SITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def canonical(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Reorient to RAS+ (nibabel's closest canonical) and return (array, affine, spacing in mm)."""
    img = nib.as_closest_canonical(nib.Nifti1Image(volume, affine))
    data = np.asanyarray(img.dataobj)
    spacing = tuple(float(z) for z in img.header.get_zooms()[:3])
    return np.ascontiguousarray(data), img.affine, spacing


def middle_slice_view(volume: np.ndarray, index: int | None = None,
                      window: tuple[float, float] | None = None) -> tuple[np.ndarray, View]:
    """The documented 2D view: an axial slice, shown with rows running anterior->posterior (radiological up)."""
    index = volume.shape[2] // 2 if index is None else int(index)
    plane = volume[:, :, index]
    center, width = window if window is not None else robust_window(volume)
    # Canonical (x=R, y=A) -> image rows = y flipped (anterior at the top), columns = x.
    image = to_uint8_window(np.flipud(plane.T), center, width)
    return np.ascontiguousarray(image), View(axis="axial", index=index, window_center=center, window_width=width)


def _nibabel(path: Path, max_pixels: int) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as exc:  # nibabel raises ImageFileError, HeaderDataError, ValueError, EOFError, ...
        raise ReadError(path, "corrupt volume header", str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                        "re-download the source") from exc
    if len(shape) < 3:
        raise ReadError(path, "not a volume", f"shape {shape}", "read it as a 2D image instead")
    check_pixel_count(path, *shape[:3], limit=max_pixels)
    meta = {"original_shape": list(shape)}
    try:
        data = np.asanyarray(img.dataobj[..., 0] if len(shape) > 3 else img.dataobj)
    except Exception as exc:
        raise ReadError(path, "corrupt volume data", str(exc).splitlines()[0], "re-download the source") from exc
    if len(shape) > 3:
        meta["frames_used"] = 1  # 4D series (fMRI, DWI): the first 3D frame is the sample
    while data.ndim > 3:
        data = data[..., 0]
    return data, img.affine, meta


def _simpleitk(path: Path, max_pixels: int) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        check_pixel_count(path, *size, limit=max_pixels)
        img = reader.Execute()
    except ReadError:
        raise
    except RuntimeError as exc:
        raise ReadError(path, "corrupt volume", str(exc).strip().splitlines()[-1], "re-download the source") from exc
    if img.GetDimension() != 3:
        raise ReadError(path, "not a volume", f"{img.GetDimension()}D image", "read it as a 2D image instead")
    if img.GetNumberOfComponentsPerPixel() != 1:
        img = sitk.VectorIndexSelectionCast(img, 0)
    data = np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))  # (z, y, x) -> (x, y, z)
    direction = np.array(img.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(img.GetSpacing(), float)
    lps[:3, 3] = img.GetOrigin()
    return data, _LPS_TO_RAS @ lps, {}


def read_volume(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS, slice_index: int | None = None) -> Decoded:
    path = Path(path)
    name = path.name.lower()
    if not path.is_file() or path.stat().st_size == 0:
        raise ReadError(path, "empty file", "0 bytes or missing", "re-download the source")
    if name.endswith(NIBABEL_SUFFIXES):
        data, affine, meta = _nibabel(path, max_pixels)
        fmt = "nii" if ".nii" in name or name.endswith(".hdr") else "mgh"
    elif name.endswith(SITK_SUFFIXES):
        data, affine, meta = _simpleitk(path, max_pixels)
        fmt = "nrrd" if "nrrd" in name or name.endswith(".nhdr") else "mha"
    else:
        raise ReadError(path, "unsupported volume format", path.suffix, "convert it or add a reader")
    volume, affine, spacing = canonical(data, affine)
    pixels, view = middle_slice_view(volume, index=slice_index)
    return Decoded(pixels=pixels, source_format=fmt, volume=volume, affine=affine, spacing=spacing, view=view,
                   meta=meta)


def nifti_gz_bytes(volume: np.ndarray, affine: np.ndarray) -> bytes:
    """Gzipped NIfTI-1 with a fixed gzip header, so the same volume always gives the same bytes."""
    img = nib.Nifti1Image(volume, affine)
    img.header.set_xyzt_units("mm")
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def read_volume_file(path: Path, options) -> Decoded:
    """The registry's entry point (`medmat.readers.registry`): this reader with a source's ReaderOptions."""
    return read_volume(path, options.max_pixels, slice_index=options.volume_slice)
