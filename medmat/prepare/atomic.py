"""Output that is either the old complete version or the new complete version, never a mixture.

`OutLock` is one advisory lock per `--out` folder (flock on OUT/.medmat.lock, released by the kernel when the
holder dies, so a stale file never blocks). `swap_in` puts a finished folder in place of the old one with one
atomic exchange (Linux renameat2 RENAME_EXCHANGE), falling back to two renames with a recoverable `.old` copy.
`worker_init` makes worker processes end with their parent and leave SIGINT to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from pathlib import Path

LOCK_NAME = ".medmat.lock"


class OutLocked(Exception):
    """Another build holds this --out folder."""


class OutLock:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "OutLock":
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except ValueError:
                holder = {}
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, started {holder.get('started', '?')}"
                   f" ({holder.get('command', '?')})")
            raise OutLocked(f"{self.out} is being written by another medmat build: {who}; wait for it to finish, "
                            "or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  "command": " ".join(["medmat", *sys.argv[1:]])[:300]}).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the lock; the file stays (removing it would race a waiter)
            self._fd = None


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux >= 3.15); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def recover(final: Path) -> None:
    """Undo a swap that died between its two renames: the old copy goes back in place."""
    old = final.with_name(f".{final.name}.old")
    if old.exists() and not final.exists():
        old.rename(final)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)


def swap_in(new: Path, final: Path) -> None:
    """Replace `final` by the finished folder `new` (same parent) so that a reader sees one or the other."""
    new, final = Path(new), Path(final)
    recover(final)
    if not final.exists():
        new.rename(final)
        return
    if _exchange(new, final):
        shutil.rmtree(new)  # `new` now holds the old version
        return
    old = final.with_name(f".{final.name}.old")
    final.rename(old)
    new.rename(final)
    shutil.rmtree(old)


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def worker_init() -> None:
    """In each worker: SIGINT is the parent's to handle, and the worker dies with its parent (PR_SET_PDEATHSIG on
    Linux, and a watcher of the parent id everywhere)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above ran
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def disk_problem(exc: OSError) -> str | None:
    """One line for a write that failed because of the disk or the folder's permissions, else None."""
    where = exc.filename or "the output folder"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (f"disk full (or file-size limit) while writing {where}: {exc.strerror}; free space or choose "
                "another --out, then run the same command again (finished sources are kept)")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write {where}: {exc.strerror}; choose a writable --out"
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and exc.filename:
        return f"cannot write {where}: a path on the way is a file, not a folder; choose another --out"
    return None
