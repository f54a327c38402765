"""The file accounting of a source build, counted independently of the adapter.

The ledger walks DIR/<source-id>/ itself (hidden files, OS metadata, links and special files included, links
never followed) and, at the end of a build, compares that list with what the build accounted for: files of items
it built or quarantined and files it skipped. Files the adapter never mentions either fall under a rule stated
here (hidden files, OS metadata folders, links, devices and FIFOs, files outside `layout.root`) and are reported
as excluded by it, or are *unaccounted*: then the report says `reconciled: false` and lists them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .base import OS_METADATA, RawItem, Skipped, shown_name, utf8_name


def files_on_disk(source_dir: Path) -> dict[str, str]:
    """Every non-folder entry under `source_dir`, relative (POSIX), with its kind: file, link or special.
    Links are listed, never followed."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(source_dir, followlinks=False):
        rel_folder = Path(folder).relative_to(source_dir).as_posix()
        for name in dirs + files:
            path = Path(folder) / name
            try:
                mode = path.lstat().st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode):
                continue  # os.walk descends into real folders; a link to a folder is S_ISLNK
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            found[rel] = "link" if stat.S_ISLNK(mode) else "file" if stat.S_ISREG(mode) else "special"
    return dict(sorted(found.items()))


def rule_for(rel: str, kind: str, layout_root: str) -> str | None:
    """The stated rule that excludes a file the adapter did not mention, or None."""
    parts = rel.split("/")
    if layout_root and not (rel + "/").startswith(layout_root.rstrip("/") + "/"):
        return f"outside layout.root {layout_root!r}"
    if not utf8_name(rel):
        return "file name is not valid UTF-8: rename it (e.g. convmv -f latin1 -t utf8)"
    if kind == "link":
        return "symbolic link: never followed (it may point outside the source folder); copy the file in instead"
    if kind == "special":
        return "not a regular file (device, FIFO or socket): never opened"
    if any(p in OS_METADATA for p in parts):
        return "operating-system metadata (__MACOSX, .DS_Store, Thumbs.db, ...)"
    if any(p.startswith(".") for p in parts):
        return "hidden file or folder (name starts with '.')"
    return None


@dataclass
class Ledger:
    """What the build touched, path by path (relative to DIR/<source-id>/)."""

    source_dir: Path
    layout_root: str = ""
    mentioned: set[str] = field(default_factory=set)

    def _rel(self, path: str) -> str:
        return f"{self.layout_root.rstrip('/')}/{path}" if self.layout_root else path

    def item(self, item: RawItem) -> None:
        for p in (*item.paths, *(m for _, m in item.masks), *item.mask_series):
            self.mentioned.add(self._rel(p))

    def skipped(self, entry: Skipped) -> None:
        self.mentioned.add(self._rel(entry.path))

    def close(self) -> tuple[list[Skipped], dict]:
        """(exclusions - and quarantines of undecodable names - by the ledger's rules, the `files` block of the
        report). Paths are relative to the adapter root when inside it, like every other path of the report."""
        disk = files_on_disk(self.source_dir) if self.source_dir.is_dir() else {}
        excluded: list[Skipped] = []
        unaccounted: list[str] = []
        outside = 0
        prefix = self.layout_root.rstrip("/") + "/" if self.layout_root else ""
        for rel, kind in disk.items():
            if rel in self.mentioned and kind == "file":
                continue
            rule = rule_for(rel, kind, self.layout_root)
            if rule is None:
                unaccounted.append(rel)
            elif rule.startswith("outside layout.root"):
                outside += 1  # beside the adapter's folder (README, licence, other archives): counted, not built
            else:
                kind_of = "quarantined" if rule.startswith("file name is not valid UTF-8") else "excluded"
                excluded.append(Skipped(shown_name(rel.removeprefix(prefix)), kind_of, rule))
        return excluded, {"on_disk": len(disk), "accounted": len(disk) - len(unaccounted), "outside_root": outside,
                          "unaccounted": len(unaccounted), "unaccounted_files": [shown_name(u) for u in unaccounted[:50]]}
