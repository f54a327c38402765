"""Safe extraction of zip and tar archives: nothing lands outside the target folder.

Refused, with the member's name: absolute paths, `..` components, symlinks and hard links (they can point anywhere),
device files, duplicate members (one would silently replace the other), a member that is both a file and a folder,
names too long for the file system, corrupt members (bad CRC, truncated stream), archives whose declared total
size exceeds a limit or expands more than MAX_RATIO times their own size (zip bombs), and a destination where a
folder on the way is a link (extraction never writes through a link already on disk). Extraction goes to a temporary sibling folder
that is moved into place only when every member was written, so an interrupted run leaves nothing half-done.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

DEFAULT_MAX_BYTES = 2 * 1024**4  # 2 TiB: larger than any source here, small enough to catch zip bombs
MAX_RATIO = 1100  # deflate cannot expand more than ~1032:1; more declared bytes than this describes a bomb
RATIO_FLOOR = 256 * 1024**2  # archives expanding to less than this are never refused by the ratio
MAX_NAME_BYTES, MAX_PATH_BYTES = 255, 4096


class UnsafeArchiveError(Exception):
    pass


def _checked_name(archive: Path, name: str) -> PurePosixPath:
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path; refusing to extract")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} climbs out with '..'; refusing to extract")
    if len(normalised.encode()) > MAX_PATH_BYTES or any(len(p.encode()) > MAX_NAME_BYTES for p in path.parts):
        raise UnsafeArchiveError(f"{archive.name}: member {name[:80]!r}... has a name longer than the file system "
                                 f"allows ({MAX_NAME_BYTES} bytes a part); refusing to extract")
    return path


def _check_set(archive: Path, entries: list[tuple[str, bool, int]], max_bytes: int) -> None:
    """Whole-archive checks over (name, is_dir, size): duplicates, file/folder clashes, total size and ratio."""
    files: dict[str, str] = {}
    dirs: set[str] = set()
    total = 0
    for name, is_dir, size in entries:
        key = _checked_name(archive, name).as_posix().rstrip("/")
        if not key or key == ".":
            continue
        parents = {p.as_posix() for p in PurePosixPath(key).parents if p.as_posix() != "."}
        if is_dir:
            if key in files:
                raise UnsafeArchiveError(f"{archive.name}: member {name!r} is both a file and a folder; refusing")
            dirs.add(key)
            continue
        if key in files:
            raise UnsafeArchiveError(f"{archive.name}: member {name!r} appears twice (the second copy would replace "
                                     "the first); refusing to extract")
        if key in dirs:
            raise UnsafeArchiveError(f"{archive.name}: member {name!r} is both a file and a folder; refusing")
        files[key] = name
        dirs |= parents
        total += size
    clash = sorted(dirs & set(files))
    if clash:
        raise UnsafeArchiveError(f"{archive.name}: member {files[clash[0]]!r} is both a file and a folder; refusing")
    if total > max_bytes:
        raise UnsafeArchiveError(f"{archive.name}: declares {total:,} bytes, over the {max_bytes:,} limit")
    packed = max(archive.stat().st_size, 1)
    if total > RATIO_FLOOR and total > MAX_RATIO * packed:
        raise UnsafeArchiveError(f"{archive.name}: declares {total:,} bytes from {packed:,} (more than {MAX_RATIO}:1, "
                                 "a decompression bomb); refusing to extract")


def _no_links_on_the_way(dest: Path, rel: Path) -> None:
    """Refuse to write `dest/rel` when a folder on the way (or the target) is a link, or the target a folder."""
    probe = dest
    for part in rel.parts:
        probe = probe / part
        if probe.is_symlink():
            raise UnsafeArchiveError(f"{probe} is a symbolic link already on disk; extraction never writes through "
                                     "a link: remove it, then extract again")


def _zip_members(archive: Path, max_bytes: int):
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _checked_name(archive, info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a symlink; refusing to extract")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UnsafeArchiveError(f"{archive.name}: member {info.filename!r} is a device or special file")
        _check_set(archive, [(i.filename, i.is_dir(), i.file_size) for i in infos], max_bytes)
        return infos


def extract(archive: Path, dest: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> list[str]:
    """Extract `archive` into `dest` (created); returns the member paths written, sorted."""
    archive, dest = Path(archive), Path(dest)
    staging = dest.with_name(f".{dest.name}.extracting")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    written: list[str] = []
    member = "?"
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
                    member = info.filename
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    written.append(info.filename)
                member = "?"
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for info in members:
                    _checked_name(archive, info.name)
                    if info.issym() or info.islnk():
                        raise UnsafeArchiveError(f"{archive.name}: member {info.name!r} is a link; refusing to extract")
                    if not (info.isfile() or info.isdir()):
                        raise UnsafeArchiveError(f"{archive.name}: member {info.name!r} is a device or special file")
                _check_set(archive, [(m.name, m.isdir(), m.size) for m in members], max_bytes)
                # The 'data' filter (PEP 706) re-checks all of the above inside tarfile itself.
                tf.extractall(staging, members=members, filter="data")
                written = [m.name for m in members if m.isfile()]
        else:
            raise UnsafeArchiveError(f"{archive.name} is neither a zip nor a tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError,
            OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            raise  # the disk, not the archive: the caller reports it
        where = f"member {member!r}" if member != "?" else "the archive"
        raise UnsafeArchiveError(f"{archive.name}: {where} is corrupt or truncated ({exc or type(exc).__name__}); "
                                 "nothing from it was written: delete it and download again") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Merge file by file: several archives of one source (NIH's twelve images_0NN.tar.gz) share a folder, and
    # extracting one must not remove what another put there. A file extracted again replaces its old copy.
    dest.mkdir(parents=True, exist_ok=True)
    try:
        for path in sorted(staging.rglob("*")):
            rel = path.relative_to(staging)
            _no_links_on_the_way(dest, rel)
            target = dest / rel
            if path.is_file() and target.is_dir():
                raise UnsafeArchiveError(f"{archive.name}: member {rel.as_posix()!r} is a file where {target} is a "
                                         "folder; refusing to extract")
            if path.is_dir() and target.exists() and not target.is_dir():
                raise UnsafeArchiveError(f"{archive.name}: member {rel.as_posix()!r} is a folder where {target} is a "
                                         "file; refusing to extract")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for path in sorted(staging.rglob("*")):
        target = dest / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
    shutil.rmtree(staging)
    return sorted(written)
