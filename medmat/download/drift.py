"""Layout drift: the tree a manifest expects is not where it says, but is in the source folder nearby.

Real downloads differ from a manifest in a few recurring ways: the archive unpacked into an extra folder, a
Kaggle mirror that stores the tree twice (`x/x/...`) or once where the manifest expects it twice, a folder whose
case differs, a level missing, a top folder renamed between versions. `find_drift` looks for each of these, one
change at a time: for every prefix OLD of an expected path it tries NEW = OLD + one extra folder that exists,
OLD less its last folder, and OLD with its last folder replaced by a sibling that exists (same name in another
case, or another name). The change that makes the most expected paths present wins, ties going to the one that
finds the manifest's own names (labels, splits, layout.params folders) inside; when no single change finds the
tree, or what it finds holds none of those names, two changes together are tried; up to three are combined.
Changes that leave the expected folder in place, or that would nest one expected path in another, are refused. The fix is then said exactly: the `--layout-root` value and manifest edit
when the change sits at or above `layout.root`, else the shell command that puts the files where the manifest
(and its `layout.params` paths) expect them.

`layout.root` itself counts as an expected folder, so a root that moved is found even when `expected_files` only
names a folder above it.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..registry.models import Source
from ..sources.base import OS_METADATA

MAX_CHANGES = 3
MAX_CHILDREN = 500  # siblings tried per folder (a folder of images has many files, few folders)

Parts = tuple[str, ...]


def _parts(path: str) -> Parts:
    return tuple(p for p in path.strip("/").split("/") if p and p != ".")


def _join(parts: Parts) -> str:
    return "/".join(parts)


@dataclass(frozen=True)
class Anchor:
    """An expected path: its parts, whether it is a folder, and where it comes from (for the manifest edit)."""

    parts: Parts
    folder: bool
    origin: str  # "expected_files[i].path" or "layout.root"

    def shown(self) -> str:
        if self.origin == "layout.root":
            return _join(self.parts)
        return (_join(self.parts) + "/" if self.folder else _join(self.parts)) if self.parts else "./"


@dataclass
class Change:
    kind: str  # extra folder | doubled folder | single folder | missing level | case differs | renamed folder
    old: Parts
    new: Parts

    def describe(self) -> str:
        old, new = _join(self.old) or ".", _join(self.new) or "."
        return f"{self.kind}: the manifest expects {old!r}, the files are under {new!r}"


@dataclass
class Drift:
    """What was found, and the fixes: a --layout-root value (or None), manifest edits, shell commands."""

    changes: list[Change]
    before: int  # expected paths present as the manifest says
    after: int  # ... once the changes are applied
    total: int
    layout_root: str | None = None
    manifest_edits: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def lines(self, source_id: str, manifest: str, data_dir: Path) -> list[str]:
        found = [f"layout drift: {c.describe()}" for c in self.changes]
        found.append(f"with {'this change' if len(self.changes) == 1 else 'these changes'} {self.after} of "
                     f"{self.total} expected paths are present (as the manifest says: {self.before})")
        if self.layout_root is not None:
            found.append(f"fix for this copy: medmat build {source_id} --data-dir {data_dir} --out OUT "
                         f"--layout-root {shlex.quote(self.layout_root or '.')}  (doctor takes it too)")
        if self.manifest_edits:
            found.append(f"or edit {manifest}: " + "; ".join(self.manifest_edits))
        if self.commands:
            found.append("or move the files where the manifest expects them: " + " && ".join(self.commands))
        return found


def anchors_of(source: Source) -> list[Anchor]:
    found = [Anchor(_parts(e.path), e.path.endswith("/"), f"expected_files[{i}].path")
             for i, e in enumerate(source.expected_files)]
    root = _parts(source.layout.root)
    if root and all(a.parts != root for a in found):
        found.append(Anchor(root, True, "layout.root"))
    return found


class _Disk:
    """Cached, read-only look at the source folder."""

    def __init__(self, base: Path):
        self.base = base
        self._children: dict[Parts, list[tuple[str, bool]]] = {}

    def present(self, parts: Parts, folder: bool) -> bool:
        path = self.base.joinpath(*parts)
        if folder:
            if not path.is_dir():
                return False
            with os.scandir(path) as entries:
                return any(True for _ in entries)
        return path.is_file()

    def children(self, parts: Parts) -> list[tuple[str, bool]]:
        """(name, is folder) of the entries of a folder, hidden and OS-metadata names left out, sorted."""
        if parts not in self._children:
            path = self.base.joinpath(*parts)
            found: list[tuple[str, bool]] = []
            if path.is_dir():
                with os.scandir(path) as entries:
                    for entry in entries:
                        if entry.name.startswith(".") or entry.name in OS_METADATA:
                            continue
                        found.append((entry.name, entry.is_dir(follow_symlinks=False)))
            folders = sorted(f for f in found if f[1])[:MAX_CHILDREN]
            files = sorted(f for f in found if not f[1])
            self._children[parts] = folders + (files if len(files) <= MAX_CHILDREN else [])
        return self._children[parts]


def _apply(anchors: list[Anchor], change: Change) -> list[Anchor]:
    k = len(change.old)
    return [Anchor(change.new + a.parts[k:], a.folder, a.origin) if a.parts[:k] == change.old else a
            for a in anchors]


def _nesting(anchors: list[Anchor]) -> set[tuple[int, int]]:
    """(i, j) for each anchor i at or above anchor j."""
    return {(i, j) for i, a in enumerate(anchors) for j, b in enumerate(anchors)
            if i != j and b.parts[:len(a.parts)] == a.parts}


def _score(disk: _Disk, anchors: list[Anchor]) -> int:
    return sum(disk.present(a.parts, a.folder) for a in anchors)


def _content(disk: _Disk, anchors: list[Anchor], mentioned: set[str]) -> int:
    """How many entries right inside the expected folders carry a name the manifest mentions (a label, a split,
    a name in layout.params): of two changes that find as many paths, the one that finds the manifest's own
    names inside them is right (a renamed top folder, rather than a missing level above it)."""
    return sum(name.lower() in mentioned for a in anchors if a.folder for name, _ in disk.children(a.parts))


def _mentioned(source: Source) -> set[str]:
    names: set[str] = set(source.labels.vocabulary) | set(source.splits.upstream_names)

    def walk(value) -> None:
        if isinstance(value, str):
            names.update(value.replace("{}", "").split("/"))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(source.layout.params)
    # The expected paths' own folder names are left out: finding `x/` inside a folder says the folder is one level
    # above the tree, not that it is the tree.
    own = {part.lower() for item in source.expected_files for part in _parts(item.path)}
    own |= {part.lower() for part in _parts(source.layout.root)}
    return {n.strip().lower() for n in names if n.strip()} - own


def _candidates(disk: _Disk, anchor: Anchor):
    """Every single change at the end of a prefix of `anchor` that the folder makes possible."""
    c = anchor.parts
    for k in range(len(c) + 1):
        old = c[:k]
        last = k == len(c)
        # one folder more, after `old` (the archive unpacked into a folder; a doubled tree)
        if not last and disk.base.joinpath(*old).is_dir():
            for name, is_dir in disk.children(old):
                if is_dir and name != c[k]:
                    kind = "doubled folder" if old and name == old[-1] else "extra folder"
                    yield Change(kind, old, old + (name,))
        if k == 0:
            continue
        # one folder less: `old` lost its last folder
        kind = "single folder" if k >= 2 and c[k - 2] == c[k - 1] else "missing level"
        yield Change(kind, old, old[:-1])
        # the last folder (or, for a file, the name) spelled otherwise
        for name, is_dir in disk.children(old[:-1]):
            if name != c[k - 1] and (is_dir or (last and not anchor.folder)):
                kind = "case differs" if name.lower() == c[k - 1].lower() else "renamed folder"
                yield Change(kind, old, old[:-1] + (name,))


# Among changes that find as many paths, the likelier explanation first.
_PREFERENCE = {"case differs": 0, "doubled folder": 1, "single folder": 2, "extra folder": 3, "missing level": 4,
               "renamed folder": 5}


def _valid_changes(disk: _Disk, anchors: list[Anchor]):
    """(change, anchors after it) for every change of a missing anchor that is not refused outright."""
    seen: set[tuple[Parts, Parts]] = set()
    for anchor in anchors:
        if disk.present(anchor.parts, anchor.folder):
            continue
        for change in _candidates(disk, anchor):
            if (change.old, change.new) in seen:
                continue
            seen.add((change.old, change.new))
            if len(change.new) <= len(change.old) and disk.base.joinpath(*change.old).exists():
                continue  # the folder is there as the manifest spells it (maybe empty): not moved nor renamed
            moved = _apply(anchors, change)
            if _nesting(moved) - _nesting(anchors):
                continue  # it would put one expected path inside another (train_images/ -> . holding train.csv)
            yield change, moved


def _best(disk: _Disk, anchors: list[Anchor], mentioned: set[str], pairs: bool = False):
    """(rank, changes, anchors after them, score) of the change that makes the most expected paths present (None
    if none makes more); the rank's second item is minus the count of manifest names found inside. With `pairs`,
    also two changes of which only the second finds anything (an extra folder whose contents changed case)."""
    current = _score(disk, anchors)
    best = None
    for change, moved in _valid_changes(disk, anchors):
        steps, score = [change], _score(disk, moved)
        if score <= current and pairs:
            follow = _best(disk, moved, mentioned)
            if follow is not None:
                steps, moved, score = [change, *follow[1]], follow[2], follow[3]
        if score <= current:
            continue
        rank = (-score, -_content(disk, moved, mentioned), len(steps), [_PREFERENCE[c.kind] for c in steps],
                len(steps[-1].new), steps[-1].new)
        if best is None or rank < best[0]:
            best = (rank, steps, moved, score)
    return best


def find_drift(source: Source, source_dir: Path) -> Drift | None:
    """The changes that put the expected tree where it is on disk, with their fixes; None when nothing is
    missing, or when no change of the kinds above finds any missing path."""
    disk = _Disk(Path(source_dir))
    anchors = anchors_of(source)
    before = _score(disk, anchors)
    if before == len(anchors) or not disk.base.is_dir():
        return None
    changes: list[Change] = []
    moved = anchors
    mentioned = _mentioned(source)
    while len(changes) < MAX_CHANGES:
        step = _best(disk, moved, mentioned)
        if step is None or step[0][1] == 0:  # nothing found, or nothing the manifest names inside what was found
            paired = _best(disk, moved, mentioned, pairs=True)
            step = paired if step is None or (paired is not None and paired[0] < step[0]) else step
        if step is None:
            break
        _, steps, moved, score = step
        changes += steps
        if score == len(anchors):
            break
    if not changes:
        return None
    drift = Drift(changes, before, _score(disk, moved), len(anchors))
    _fixes(drift, source, anchors, moved, disk.base)
    return drift


def _fixes(drift: Drift, source: Source, anchors: list[Anchor], moved: list[Anchor], base: Path) -> None:
    root = _parts(source.layout.root)
    # Each change is stated where the previous ones left the tree: follow the root through them.
    new_root, above_root = root, True
    for change in drift.changes:
        if len(change.old) > len(new_root) or new_root[:len(change.old)] != change.old:
            above_root = False
            break
        new_root = change.new + new_root[len(change.old):]
    if above_root:
        drift.layout_root = _join(new_root)
    for old, new in zip(anchors, moved):
        if old.parts != new.parts:
            drift.manifest_edits.append(f"{old.origin}: {old.shown()!r} -> {new.shown()!r}")
    if above_root and root != _parts(drift.layout_root or "") and all(a.origin != "layout.root" for a in anchors):
        drift.manifest_edits.append(f"layout.root: {_join(root)!r} -> {drift.layout_root!r}")
    if not above_root:
        drift.manifest_edits.append("and the folder paths in layout.params that name the changed folders")
    # Shell commands, undoing the changes in reverse order.
    q = lambda parts: shlex.quote(str(base.joinpath(*parts)))  # noqa: E731
    for change in reversed(drift.changes):
        old, new = change.old, change.new
        if len(new) == len(old) + 1:  # an extra folder: lift its contents one level
            drift.commands.append(f"mv {q(new)}/* {q(old)}/ && rmdir {q(new)}")
        elif len(new) + 1 == len(old):  # a level missing: make it and move the expected entries into it
            names = sorted({a.parts[len(old)] for a in anchors
                            if a.parts[:len(old)] == old and len(a.parts) > len(old)})
            if names:
                drift.commands.append(f"mkdir -p {q(old)} && mv {' '.join(q(new + (n,)) for n in names)} {q(old)}/")
            else:  # the whole folder's contents form the missing level
                inner = shlex.quote(old[-1])
                drift.commands.append(f"cd {q(new)} && mkdir {inner} && find . -mindepth 1 -maxdepth 1 ! -name "
                                      f"{inner} -exec mv {{}} {inner}/ \\;")
        else:
            drift.commands.append(f"mv {q(new)} {q(old)}")


@dataclass(frozen=True)
class Copy:
    """A folder inside the tree that holds the tree's own folders again (a mirror that stored it twice)."""

    copy: str  # relative to DIR/<source-id>/
    root: str
    names: tuple[str, ...]

    def describe(self) -> str:
        return (f"tree stored twice: {self.copy!r} holds the folders of {self.root or '.'!r} again "
                f"({', '.join(self.names)}); a build reads both copies. Point layout.root (or --layout-root) at "
                "one copy, or leave the other out with layout.params.exclude_regex")


def find_copies(source: Source, source_dir: Path) -> list[Copy]:
    """Folders C (or C/D) right under the layout root whose sub-folders include every other sub-folder of the
    root: at least two of them, or one when C repeats the root's own name (`x/x/`)."""
    disk = _Disk(Path(source_dir))
    root = _parts(source.layout.root)
    if not disk.base.joinpath(*root).is_dir():
        return []
    top = {name for name, is_dir in disk.children(root) if is_dir}
    found = []
    for child in sorted(top):
        others = top - {child}
        for inner in [(child,)] + [(child, name) for name, is_dir in disk.children(root + (child,)) if is_dir]:
            names = {name for name, is_dir in disk.children(root + inner) if is_dir}
            repeats_name = bool(root) and inner[-1] == root[-1]
            if others and others <= names and (len(others) >= 2 or repeats_name):
                found.append(Copy(_join(root + inner), _join(root), tuple(sorted(others))))
                break
    return found
