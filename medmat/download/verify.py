"""Checking a file against what its manifest records: regular file, size, sha256 and the publisher's md5."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ..registry.models import DownloadFile


class VerificationError(Exception):
    pass


def regular_size(path: Path) -> int:
    """The size of `path`, which must be a regular file: a FIFO, device or link is never opened (it could block
    forever or point anywhere)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise VerificationError(f"{Path(path).name} is not a regular file (a link, FIFO or device); never opened: "
                                "remove it and download again")
    return st.st_size


def digests_of(path: Path, chunk: int = 1 << 20) -> tuple[str, str]:
    """(sha256, md5) of a regular file, in one pass."""
    regular_size(path)
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    return digests_of(path, chunk)[0]


def verify(path: Path, file: DownloadFile, chunk: int = 1 << 20) -> tuple[int, str]:
    """Size, sha256 and (when the publisher states one) md5 of `path`; raises VerificationError when any differs
    from what the manifest records."""
    size = regular_size(path)
    if file.size is not None and size != file.size:
        raise VerificationError(f"size is {size:,} bytes, the manifest says {file.size:,}")
    digest, md5 = digests_of(path, chunk)
    if file.sha256 is not None and digest != file.sha256:
        raise VerificationError(f"sha256 is {digest}, the manifest says {file.sha256}")
    if getattr(file, "md5", None) is not None and md5 != str(file.md5).lower():
        raise VerificationError(f"md5 is {md5}, the publisher states {file.md5}")
    return size, digest


def verified_by(file: DownloadFile) -> str | None:
    """What a download of `file` is checked against: 'sha256', 'md5 (publisher)', or None (unverified)."""
    if file.sha256 is not None:
        return "sha256"
    if getattr(file, "md5", None) is not None:
        return "md5 (publisher)"
    return None
