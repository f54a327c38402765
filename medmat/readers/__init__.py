"""Readers turn one file (or one DICOM series) into a `Decoded` sample, or raise `ReadError`.

Light on import: the image libraries load only when a reader runs (see `registry`)."""

from __future__ import annotations

from .base import DEFAULT_MAX_BYTES, Decoded, ReadError, View
from .registry import ReaderOptions, looks_like_dicom, read_file, reader_for, register_reader

_LAZY = {"read_dicom": "dicom", "read_dicom_series": "dicom", "read_raster": "raster", "read_volume": "volume",
         "nifti_gz_bytes": "volume", "middle_slice_view": "volume", "read_mask": "masks"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = ["DEFAULT_MAX_BYTES", "Decoded", "ReadError", "ReaderOptions", "View", "looks_like_dicom", "read_file",
           "reader_for", "register_reader", *_LAZY]
