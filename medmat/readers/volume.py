"""Volumes: NIfTI-1/2 and MGH through nibabel, MHA/MHD/NRRD through SimpleITK.

Every volume is reoriented to the closest canonical orientation (RAS+) with its spacing kept, and is stored as
gzipped NIfTI-1. The 2D view of a volume (what a VQA model sees) follows one documented rule, recorded in the
row's `view`: the axial slice (last canonical axis) at the middle index, or at an index an adapter passes (e.g. the
slice with the largest mask), windowed by the data's own window when it has one, else by the 0.5-99.5th percentile.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from .base import (DEFAULT_MAX_BYTES, MAX_EXPANSION, MIN_RATIO_BYTES, Decoded, ReadError, View, check_finite,
                   check_size, finite_number, inside, regular_file, robust_window, to_uint8_window)

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


def _inflated_at_least(path: Path, wanted: int, chunk: int = 1 << 20) -> int:
    """Bytes a gzip file inflates to, counted in bounded memory and stopping once `wanted` are reached; a stream that
    is cut short or corrupt counts what came before the fault."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    total = 0
    with open(path, "rb") as fh:
        while total < wanted:
            block = fh.read(chunk)
            if not block:
                break
            try:
                total += len(inflater.decompress(block, wanted - total + 1))
                while inflater.unconsumed_tail and total < wanted:
                    total += len(inflater.decompress(inflater.unconsumed_tail, wanted - total + 1))
            except zlib.error:
                break
            if inflater.eof:
                break
    return total


def _check_nibabel_header(path: Path, img, max_bytes: int, file_bytes: int) -> tuple[int, ...]:
    shape = tuple(int(d) for d in img.shape)
    if len(shape) < 3:
        raise ReadError(path, "not a volume", f"shape {shape}", "read it as a 2D image instead")
    dtype = np.dtype(img.get_data_dtype())
    if dtype.kind == "c":
        raise ReadError(path, "complex-valued volume", f"data type {dtype}", "export magnitude images instead")
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise ReadError(path, "unsupported voxel type", f"data type {dtype}", "convert it to a scalar volume")
    check_size(path, *shape[:3], limit=max_bytes, itemsize=dtype.itemsize)  # one 3D frame is decoded
    for d, zoom in zip(shape[:3], img.header.get_zooms()[:3]):
        finite_number(path, zoom, "spacing", positive=True)
    # The whole data block the header declares must be in the file, every frame of a 4D series included.
    offset = int(getattr(img.dataobj, "offset", 0) or 0)
    needed = offset + math.prod(shape) * dtype.itemsize
    data_file = Path(img.file_map["image"].filename) if "image" in img.file_map else path
    if data_file != path:
        regular_file(data_file)
    name = data_file.name.lower()
    if name.endswith(".gz") or name.endswith(".mgz"):
        if needed > MAX_EXPANSION * max(data_file.stat().st_size, 1) and needed > MIN_RATIO_BYTES:
            raise ReadError(path, "header promises more data than the file holds",
                            f"{needed:,} bytes from {data_file.stat().st_size:,} compressed", "re-download the source")
        have = _inflated_at_least(data_file, needed)
    else:
        have = data_file.stat().st_size
    if have < needed:
        raise ReadError(path, "header promises more data than the file holds",
                        f"shape {shape} x {dtype.itemsize} bytes needs {needed:,} bytes, the file holds {have:,}",
                        "the file is truncated: re-download the source")
    return shape


def _nibabel(path: Path, max_bytes: int, file_bytes: int) -> tuple[np.ndarray, np.ndarray, dict]:
    try:
        img = nib.load(str(path))
        img.shape  # noqa: B018 - a header that cannot give its shape is corrupt
    except Exception as exc:  # nibabel raises ImageFileError, HeaderDataError, ValueError, EOFError, ...
        raise ReadError(path, "corrupt volume header", str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                        "re-download the source") from exc
    shape = _check_nibabel_header(path, img, max_bytes, file_bytes)
    meta = {"original_shape": list(shape)}
    try:
        data = np.asanyarray(img.dataobj[..., 0] if len(shape) > 3 else img.dataobj)
    except Exception as exc:
        raise ReadError(path, "corrupt volume data", (str(exc).splitlines() or [type(exc).__name__])[0].split(
            " from ")[0], "re-download the source") from exc
    if len(shape) > 3:
        meta["frames_used"] = 1  # 4D series (fMRI, DWI): the first 3D frame is the sample
    while data.ndim > 3:
        data = data[..., 0]
    check_finite(path, data, "voxel values")
    if not np.isfinite(img.affine).all():
        raise ReadError(path, "invalid spacing or orientation", "the affine holds NaN or inf",
                        "fix the header or exclude the file")
    return data, img.affine, meta


_SITK_ELEMENT_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                       "MET_LONG": 8, "MET_ULONG": 8, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
                       "MET_DOUBLE": 8}
_NRRD_TYPE_BYTES = {"int8": 1, "uint8": 1, "uchar": 1, "signed char": 1, "char": 1, "short": 2, "ushort": 2,
                    "int16": 2, "uint16": 2, "unsigned short": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4,
                    "unsigned int": 4, "float": 4, "double": 8, "longlong": 8, "ulonglong": 8, "int64": 8,
                    "uint64": 8}


def _header_fields(path: Path) -> tuple[dict[str, str], int]:
    """The text header of a MetaImage or NRRD file as lower-cased keys, and where the data starts (attached)."""
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    fields: dict[str, str] = {}
    offset = 0
    is_nrrd = head.startswith(b"NRRD")
    for raw_line in head.split(b"\n"):
        offset += len(raw_line) + 1
        line = raw_line.decode("latin-1").strip()
        if is_nrrd:
            if not line:
                break
            if line.startswith("#") or line.startswith("NRRD"):
                continue
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower().replace(" ", "")] = value.lstrip("=").strip()
        else:
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip().lower()] = value.strip()
                if key.strip().lower() == "elementdatafile":
                    if value.strip().upper() == "LIST":
                        fields["elementdatafile"] = "LIST"
                    break
    return fields, offset


def _check_sitk_header(path: Path, options) -> None:
    """A MetaImage/NRRD header names its data file: it must be this file or a regular file inside the source
    folder, and hold at least the bytes the header declares. Checked before SimpleITK opens anything."""
    fields, offset = _header_fields(path)
    is_nrrd = path.name.lower().endswith((".nrrd", ".nhdr"))
    if is_nrrd:
        data_name = fields.get("datafile")
        sizes = fields.get("sizes", "")
        elem = _NRRD_TYPE_BYTES.get(fields.get("type", "").lower())
        raw = fields.get("encoding", "raw").lower() == "raw"
    else:
        data_name = fields.get("elementdatafile")
        data_name = None if data_name in (None, "LOCAL", "local") else data_name
        sizes = fields.get("dimsize", "")
        elem = _SITK_ELEMENT_BYTES.get(fields.get("elementtype", "").upper())
        raw = fields.get("compresseddata", "false").lower() != "true"
        elem = elem * int(fields.get("elementnumberofchannels", "1") or 1) if elem else elem
    if data_name is not None:
        if data_name.upper().startswith("LIST") or "%" in data_name or " " in data_name.strip():
            raise ReadError(path, "volume data file list not supported", f"data file {data_name!r}",
                            "convert the volume to one file (e.g. .nii.gz)")
        data_path = Path(data_name) if Path(data_name).is_absolute() else path.parent / data_name
        if not inside(data_path, options.confine_to or path.parent):
            raise ReadError(path, "volume data file outside the source folder", f"data file {data_name!r}",
                                "put the data file beside its header")
        data_size = regular_file(data_path)
        data_offset = 0
    else:
        data_size, data_offset = path.stat().st_size, offset
    try:
        dims = [int(x) for x in sizes.split()]
    except ValueError:
        return  # SimpleITK reports the header as corrupt
    if dims and elem and raw:
        needed = math.prod(dims) * elem
        if data_size - data_offset < needed:
            raise ReadError(path, "header promises more data than the file holds",
                            f"sizes {dims} x {elem} bytes needs {needed:,} bytes, the data file holds "
                            f"{max(data_size - data_offset, 0):,}", "the file is truncated: re-download the source")


def _simpleitk(path: Path, options) -> tuple[np.ndarray, np.ndarray, dict]:
    _check_sitk_header(path, options)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        itemsize = sitk.Image([1] * len(size), reader.GetPixelID()).GetSizeOfPixelComponent()
        check_size(path, *size, reader.GetNumberOfComponents(), limit=options.max_bytes, itemsize=itemsize)
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
    if data.dtype.kind == "c":
        raise ReadError(path, "complex-valued volume", f"data type {data.dtype}", "export magnitude images instead")
    check_finite(path, data, "voxel values")
    for value in img.GetSpacing():
        finite_number(path, value, "spacing", positive=True)
    direction = np.array(img.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(img.GetSpacing(), float)
    lps[:3, 3] = img.GetOrigin()
    if not np.isfinite(lps).all():
        raise ReadError(path, "invalid spacing or orientation", "the header holds NaN or inf",
                        "fix the header or exclude the file")
    return data, _LPS_TO_RAS @ lps, {}


def read_volume(path: Path, max_bytes: int = DEFAULT_MAX_BYTES, slice_index: int | None = None,
                options=None) -> Decoded:
    from .registry import ReaderOptions

    path = Path(path)
    options = options or ReaderOptions(max_bytes=max_bytes)
    name = path.name.lower()
    size = regular_file(path, options.max_bytes)
    if name.endswith(NIBABEL_SUFFIXES):
        data, affine, meta = _nibabel(path, options.max_bytes, size)
        fmt = "nii" if ".nii" in name or name.endswith(".hdr") else "mgh"
    elif name.endswith(SITK_SUFFIXES):
        data, affine, meta = _simpleitk(path, options)
        fmt = "nrrd" if "nrrd" in name or name.endswith(".nhdr") else "mha"
    else:
        raise ReadError(path, "unsupported volume format", path.suffix, "convert it or add a reader")
    volume, affine, spacing = canonical(data, affine)
    if slice_index is not None and not 0 <= slice_index < volume.shape[2]:
        raise ReadError(path, "slice index out of range", f"{slice_index} of {volume.shape[2]} slices",
                        "fix layout.reader.volume_slice")
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
    return read_volume(path, options.max_bytes, slice_index=options.volume_slice, options=options)
