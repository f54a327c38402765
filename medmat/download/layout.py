"""Where downloads live under DIR, and which of a source's expected files are there.

DIR/<source-id>/            what the build reads: extracted archives and the files that are not archives
DIR/.downloads/<source-id>/ verified archives (`<name>`), partial ones (`<name>.part`) and, per archive, a
                            `<name>.done.json` marker recording the size and sha256 it was verified with
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..registry import Registry
from ..registry.models import Source

CACHE = ".downloads"


class SelectionError(ValueError):
    pass


def select_sources(registry: Registry, names: list[str]) -> list[str]:
    """Source ids for `names`: each a source id, a subset number (its member sources) or `all`; order kept."""
    chosen: list[str] = []
    for name in names:
        key = name.strip()
        if key.lower() == "all":
            ids = sorted(registry.sources)
        elif key.isdigit() and key.zfill(2) in registry.subsets:
            ids = list(registry.subsets[key.zfill(2)].sources)
        elif key in registry.sources:
            ids = [key]
        else:
            raise SelectionError(f"{name!r} is neither a source id, a subset number nor `all`; subsets: "
                                 f"{', '.join(sorted(registry.subsets))}; run `medmat list` for the source ids")
        chosen += [i for i in ids if i not in chosen]
    return chosen


def source_dir(data_dir: Path, source_id: str) -> Path:
    return Path(data_dir) / source_id


def cache_dir(data_dir: Path, source_id: str) -> Path:
    return Path(data_dir) / CACHE / source_id


def marker_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".done.json")


def read_marker(archive: Path) -> dict | None:
    try:
        return json.loads(marker_path(archive).read_text())
    except (OSError, ValueError):
        return None


def write_marker(archive: Path, size: int, sha256: str, extracted: bool, kept: bool) -> None:
    stat = archive.stat() if kept else None
    data = {"size": size, "sha256": sha256, "extracted": extracted, "kept": kept,
            "mtime_ns": stat.st_mtime_ns if stat else None}
    marker_path(archive).write_text(json.dumps(data, indent=1) + "\n")


def marker_matches(archive: Path) -> dict | None:
    """The marker, when it still describes `archive` (same size and mtime) or the archive was deleted on purpose."""
    marker = read_marker(archive)
    if not marker:
        return None
    if not archive.exists():
        return marker if not marker.get("kept") else None
    stat = archive.stat()
    if stat.st_size == marker.get("size") and stat.st_mtime_ns == marker.get("mtime_ns"):
        return marker
    return None


@dataclass(frozen=True)
class ExpectedCheck:
    path: str
    description: str
    status: str  # present | missing | empty | not a folder | not a file

    @property
    def ok(self) -> bool:
        return self.status == "present"


def check_expected(source: Source, data_dir: Path) -> list[ExpectedCheck]:
    """One check per `expected_files` entry: a trailing / asks for a non-empty folder, anything else a file."""
    root = source_dir(data_dir, source.id)
    checks = []
    for item in source.expected_files:
        target = root / item.path.rstrip("/")
        if item.path.endswith("/"):
            if not target.exists():
                status = "missing"
            elif not target.is_dir():
                status = "not a folder"
            else:
                status = "present" if any(target.iterdir()) else "empty"
        else:
            if not target.exists():
                status = "missing"
            elif not target.is_file():
                status = "not a file"
            else:
                status = "present"
        checks.append(ExpectedCheck(item.path, item.description, status))
    return checks


def substitute_dir(text: str, data_dir: Path) -> str:
    """Manifest instructions say DIR for the data folder; show the real one."""
    return re.sub(r"\bDIR(?=/)", str(data_dir).rstrip("/") or "/", text)
