"""Which reader decodes which file: a suffix registry with lazily imported readers, and per-source options.

A reader is `read(path, options) -> Decoded`. Registering one is a line here (or `register_reader` from a plugin):
adding an `.npz` volume reader touches this file and the reader's own module. The image libraries are imported
only when a file of theirs is read, so `medmat --help` and `medmat validate` stay fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .base import DEFAULT_MAX_BYTES, Decoded, ReadError


class ReaderOptions(BaseModel):
    """Options a source manifest may set under `layout.reader` (validated by `medmat validate`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1, description="refuse a sample whose file, or whose "
                           "decoded size (elements x 8 bytes of working memory), is larger than this")
    volume_slice: int | None = Field(default=None, ge=0, description="the slice a volume's 2D view shows "
                                     "(default: the middle one along the axial axis)")
    confine_to: str | None = Field(default=None, description="set by the build, not in manifests: the folder every "
                                   "file a reader opens (a volume header's data file included) must resolve into")


Reader = Callable[[Path, ReaderOptions], Decoded]

# (suffixes, "module:function"); the first entry whose suffix ends the lower-cased name wins.
_READERS: list[tuple[tuple[str, ...], str]] = [
    ((".nii", ".nii.gz", ".mgh", ".mgz", ".hdr", ".mha", ".mhd", ".nrrd", ".nhdr"), "medmat.readers.volume:read_volume_file"),
    ((".dcm", ".dicom", ".dic"), "medmat.readers.dicom:read_dicom_file"),
    ((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".pgm", ".ppm"), "medmat.readers.raster:read_raster_file"),
]
_DICOM_SNIFF = "medmat.readers.dicom:read_dicom_file"


def register_reader(suffixes: tuple[str, ...], target: str) -> None:
    """Add a reader ("package.module:function") for these suffixes, ahead of the built-in ones."""
    _READERS.insert(0, (tuple(s.lower() for s in suffixes), target))


def _load(target: str) -> Reader:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def looks_like_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble, whatever their name."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def reader_for(path: Path) -> Reader:
    name = Path(path).name.lower()
    for suffixes, target in _READERS:
        if name.endswith(suffixes):
            return _load(target)
    if looks_like_dicom(Path(path)):
        return _load(_DICOM_SNIFF)
    raise ReadError(path, "unsupported file type", Path(path).suffix or "no suffix",
                    "list the image extensions in the manifest's layout.params.extensions")


def read_file(path: Path, options: ReaderOptions | int | None = None) -> Decoded:
    """Decode one file with the reader its name (or its DICOM preamble) calls for."""
    if options is None:
        options = ReaderOptions()
    elif isinstance(options, int):  # a bare byte limit
        options = ReaderOptions(max_bytes=options)
    return reader_for(path)(Path(path), options)
