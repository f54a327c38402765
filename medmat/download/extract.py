"""Safe extraction of zip and tar archives: nothing lands outside the target folder.

Refused: absolute paths, `..` components, symlinks and hard links (they can point anywhere), device files, and
archives whose declared total size exceeds a limit (zip bombs). Extraction goes to a temporary sibling folder
that is moved into place only when every member was written, so an interrupted run leaves nothing half-done.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

DEFAULT_MAX_BYTES = 2 * 1024**4  # 2 TiB: larger than any source here, small enough to catch zip bombs


class UnsafeArchiveError(Exception):
    pass


def _checked_name(archive: Path, name: str) -> PurePosixPath:
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path; refusing to extract")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} climbs out with '..'; refusing to extract")
    return path


def _zip_members(archive: Path, max_bytes: int):
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            _checked_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a symlink; refusing to extract")
            total += info.file_size
        if total > max_bytes:
            raise UnsafeArchiveError(f"{archive.name}: declares {total:,} bytes, over the {max_bytes:,} limit")
        return infos


def extract(archive: Path, dest: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> list[str]:
    """Extract `archive` into `dest` (created); returns the member paths written, sorted."""
    archive, dest = Path(archive), Path(dest)
    staging = dest.with_name(f".{dest.name}.extracting")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    written: list[str] = []
    try:
        if zipfile.is_zipfile(archive):
            infos = _zip_members(archive, max_bytes)
            with zipfile.ZipFile(archive) as zf:
                for info in infos:
                    target = staging / _checked_name(archive, info.filename)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    written.append(info.filename)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                total = 0
                for member in members:
                    _checked_name(archive, member.name)
                    if member.issym() or member.islnk():
                        raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} is a link; refusing to extract")
                    if not (member.isfile() or member.isdir()):
                        raise UnsafeArchiveError(f"{archive.name}: member {member.name!r} is a device or special file")
                    total += member.size
                if total > max_bytes:
                    raise UnsafeArchiveError(f"{archive.name}: declares {total:,} bytes, over the {max_bytes:,} limit")
                # The 'data' filter (PEP 706) re-checks all of the above inside tarfile itself.
                tf.extractall(staging, members=members, filter="data")
                written = [m.name for m in members if m.isfile()]
        else:
            raise UnsafeArchiveError(f"{archive.name} is neither a zip nor a tar archive")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Merge file by file: several archives of one source (NIH's twelve images_0NN.tar.gz) share a folder, and
    # extracting one must not remove what another put there. A file extracted again replaces its old copy.
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.rglob("*")):
        target = dest / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
    shutil.rmtree(staging)
    return sorted(written)
