"""Data and output folders on object storage (`s3://`, `gs://`, any fsspec URL).

The build's readers need seekable local files (SimpleITK, pydicom and DICOM series readers do), so a remote source
folder is *staged*: copied to a local scratch folder one source at a time, built, and removed. A remote output
folder is built locally and uploaded when complete, shards first and the dataset card (README.md) last, so a
reader never sees a card that names shards not yet uploaded. Disk use is bounded by one source plus the output.
Credentials and endpoints come from the usual fsspec / cloud SDK configuration (for S3: AWS_* variables,
`AWS_ENDPOINT_URL` for an S3-compatible store); they are never written anywhere by medmat.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

SCRATCH_ENV = "MEDMAT_SCRATCH"


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def _fs(url: str):
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def _scratch(prefix: str) -> Path:
    import os

    return Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get(SCRATCH_ENV)))


def exists(url: str) -> bool:
    fs, path = _fs(url)
    return fs.exists(path)


@contextlib.contextmanager
def staged_source(data_dir: str | Path, source_id: str) -> Iterator[Path]:
    """A local data folder holding `<source_id>/`: the given folder itself when local, else a staged copy."""
    if not is_url(data_dir):
        yield Path(data_dir)
        return
    fs, base = _fs(str(data_dir))
    local = _scratch(f"medmat-{source_id}-")
    try:
        remote = f"{base.rstrip('/')}/{source_id}"
        if fs.exists(remote):
            fs.get(remote + "/", str(local / source_id) + "/", recursive=True)
        yield local
    finally:
        shutil.rmtree(local, ignore_errors=True)


@contextlib.contextmanager
def staged_output(out: str | Path, keep_sources: list[str]) -> Iterator[Path]:
    """A local output folder; for a URL, earlier built `sources/<id>/` of `keep_sources` are fetched first and the
    result is uploaded on success (card last). Nothing is uploaded when the build raises."""
    if not is_url(out):
        yield Path(out)
        return
    fs, base = _fs(str(out))
    local = _scratch("medmat-out-")
    try:
        for source_id in keep_sources:
            remote = f"{base.rstrip('/')}/sources/{source_id}"
            if fs.exists(remote):
                fs.get(remote + "/", str(local / "sources" / source_id) + "/", recursive=True)
        yield local
        upload(local, str(out))
    finally:
        shutil.rmtree(local, ignore_errors=True)


def upload(local: Path, url: str) -> None:
    """Copy a built output folder to `url`: every file but the hub card, then the card."""
    fs, base = _fs(url)
    files = sorted(p for p in Path(local).rglob("*") if p.is_file())
    card = Path(local) / "hub" / "README.md"
    for path in [p for p in files if p != card] + ([card] if card in files else []):
        rel = path.relative_to(local).as_posix()
        fs.put_file(str(path), f"{base.rstrip('/')}/{rel}")
