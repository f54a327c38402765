"""Readers turn one file (or one DICOM series) into a `Decoded` sample, or raise `ReadError`.

Light on import: every name loads its module on first use, so `medmat --help` imports no numpy or image library and
a JPEG source never imports pydicom, nibabel or SimpleITK (see `registry`)."""

from __future__ import annotations

import importlib

from .limits import DEFAULT_MAX_BYTES

_LAZY = {"Decoded": "base", "ReadError": "base", "View": "base", "ReaderOptions": "registry",
         "looks_like_dicom": "registry", "read_file": "registry", "reader_for": "registry",
         "register_reader": "registry", "read_dicom": "dicom", "read_dicom_series": "dicom", "read_raster": "raster",
         "read_volume": "volume", "nifti_gz_bytes": "volume", "middle_slice_view": "volume", "read_mask": "masks"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_MAX_BYTES", *_LAZY]
