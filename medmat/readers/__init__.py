"""Readers turn one file (or one DICOM series) into a `Decoded` sample, or raise `ReadError`."""

from __future__ import annotations

from pathlib import Path

from .base import DEFAULT_MAX_PIXELS, Decoded, ReadError, View
from .dicom import read_dicom, read_dicom_series
from .raster import read_raster
from .volume import NIBABEL_SUFFIXES, SITK_SUFFIXES, nifti_gz_bytes, read_volume

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".pgm", ".ppm")
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


def looks_like_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble, whatever their name."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read_file(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Decoded:
    path = Path(path)
    name = path.name.lower()
    if name.endswith(NIBABEL_SUFFIXES + SITK_SUFFIXES):
        return read_volume(path, max_pixels)
    if name.endswith(DICOM_SUFFIXES) or (not name.endswith(RASTER_SUFFIXES) and looks_like_dicom(path)):
        return read_dicom(path, max_pixels)
    if name.endswith(RASTER_SUFFIXES):
        return read_raster(path, max_pixels)
    raise ReadError(path, "unsupported file type", path.suffix or "no suffix",
                    "list the image extensions in the manifest's layout.params.extensions")


__all__ = ["DEFAULT_MAX_PIXELS", "Decoded", "ReadError", "View", "nifti_gz_bytes", "read_dicom", "read_dicom_series",
           "read_file", "read_raster", "read_volume", "looks_like_dicom"]
