"""What each source needs under DIR/<source-id>/, what is there, what is missing or wrong, and the next step.

Checked: every `expected_files` entry (a trailing / asks for a non-empty folder); every file of `files` that is
not an archive (present, size, sha256, the publisher's md5); every archive kept under DIR/.downloads/ (size and
sha256, trusted from its marker while the file is unchanged) and whether it was extracted. When expected paths
(or the layout.root folder) are missing, the source folder is searched for the tree (`medmat.download.drift`:
an extra or doubled folder, a missing level, a case change, a renamed folder) and the exact fix is printed. When
the tree is there (as the manifest says, or where the drift search found it) and the files are verified, the
headers of `layout.label_files` are compared with their listed columns, and the source's adapter walks the tree
as a build would, without decoding any pixels: label files must parse and have the columns `layout.params`
names, and every label value they hold must be listed in the manifest. A source is ready when nothing is missing
or wrong.
"""

from __future__ import annotations

import csv
import shlex
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..registry import Registry
from ..registry.loader import with_layout_root
from ..registry.models import AccessKind, Source
from . import kaggle
from .drift import find_copies, find_drift
from .http import VerificationError, verified_by, verify
from .layout import cache_dir, check_expected, marker_matches, source_dir

UNVERIFIED = "present, UNVERIFIED (the manifest records no sha256 or md5)"
OK_STATES = {"present", "verified", "verified (publisher's md5)", UNVERIFIED, "extracted", "not downloaded",
             "downloaded, not extracted", "labels known", "columns as listed"}


@dataclass
class Item:
    what: str  # "expected" | "file" | "archive" | "layout" | "label-file" | "labels"
    path: str
    status: str
    detail: str = ""

    @property
    def problem(self) -> bool:
        return self.status not in OK_STATES


@dataclass
class SourceReport:
    source_id: str
    access: str
    items: list[Item] = field(default_factory=list)
    next_step: str = ""
    drift: list[str] = field(default_factory=list)  # what the drift search found and the fixes, as lines
    layout_root: str | None = None  # the --layout-root value that fixes the drift, when one does

    @property
    def expected(self) -> int:
        return sum(1 for i in self.items if i.what == "expected")

    @property
    def present(self) -> int:
        return sum(1 for i in self.items if i.what == "expected" and not i.problem)

    @property
    def problems(self) -> list[Item]:
        return [i for i in self.items if i.problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"source": self.source_id, "access": self.access, "ok": self.ok, "expected": self.expected,
                "present": self.present, "items": [asdict(i) | {"problem": i.problem} for i in self.items],
                "drift": self.drift, "layout_root": self.layout_root, "next_step": self.next_step}


def _file_item(path: Path, file, shown: str) -> Item:
    if not path.exists() and not path.is_symlink():
        return Item("file", shown, "missing")
    try:
        size, digest = verify(path, file)
    except VerificationError as exc:
        text = str(exc)
        status = ("wrong size" if text.startswith("size") else "not a regular file" if "not a regular file" in text
                  else "wrong hash")
        return Item("file", shown, status, text)
    how = verified_by(file)
    if how is None:
        return Item("file", shown, UNVERIFIED, f"{size:,} bytes, sha256 {digest}; record it with "
                    "`medmat download --register-checksums`")
    sums = ", ".join(f"{name} {value} matches" for name, value in (("sha256", file.sha256), ("md5", file.md5)) if value)
    return Item("file", shown, "verified" if how == "sha256" else "verified (publisher's md5)",
                f"{size:,} bytes, {sums}")


def _archive_item(path: Path, file, shown: str) -> Item:
    part = path.with_name(path.name + ".part")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        return Item("archive", shown, "not a regular file", "a link, FIFO or device where the archive should be; "
                    "never opened: remove it and download again")
    marker = marker_matches(path)
    if marker:
        if not path.exists():
            return Item("archive", shown, "extracted", "archive deleted after extraction")
        return Item("archive", shown, "extracted" if marker.get("extracted") else "downloaded, not extracted",
                    f"{marker['size']:,} bytes, sha256 {marker['sha256']}")
    if path.exists():
        item = _file_item(path, file, shown)
        item.what = "archive"
        if not item.problem:
            item.status = "downloaded, not extracted"
        return item
    if part.is_file() and not part.is_symlink():
        return Item("archive", shown, "not downloaded", f"partial: {part.stat().st_size:,} bytes in {part.name}; "
                    "run the download again to resume")
    return Item("archive", shown, "not downloaded")


def _next_step(source: Source, report: SourceReport, data_dir: Path, override: str | None = None) -> str:
    shown = f" --layout-root {shlex.quote(override or '.')}" if override is not None else ""
    if report.ok:
        return f"ready: medmat build {source.id} --data-dir {data_dir} --out OUT{shown}"
    if report.drift:
        if report.layout_root is not None:
            return (f"medmat doctor {source.id} --data-dir {data_dir} --layout-root "
                    f"{shlex.quote(report.layout_root or '.')} (and build with the same option), or edit the "
                    "manifest as shown")
        return "move the files where the manifest expects them, as shown (or edit the manifest)"
    if any(i.status == "tree stored twice" for i in report.problems):
        return "keep one copy of the tree: point layout.root (or --layout-root) at it, or exclude the other"
    if any(i.what in ("labels", "label-file") for i in report.problems):
        return f"fix {report.source_id}'s manifest (labels or layout.params) or its label files, then run doctor again"
    unextracted = [i for i in report.items if i.what == "archive" and i.status == "downloaded, not extracted"]
    kind = source.access.kind
    if unextracted and kind is AccessKind.open:
        return (f"extract {', '.join(i.path for i in unextracted)} into {source_dir(data_dir, source.id)}/ "
                f"(medmat download {source.id} does it for zip and tar; other formats by hand)")
    if kind is AccessKind.open:
        return f"medmat download {source.id} --data-dir {data_dir}"
    if kind is AccessKind.kaggle_competition:
        return (f"accept the rules at {kaggle.kaggle_page(source)}/rules, then medmat download {source.id} "
                f"--data-dir {data_dir} (needs Kaggle credentials)")
    if kind is AccessKind.kaggle_dataset:
        return f"medmat download {source.id} --data-dir {data_dir} (needs Kaggle credentials)"
    return (f"{kind.value} access at {source.access.page}: `medmat download {source.id} --data-dir {data_dir}` "
            "prints the numbered steps")


def _header(path: Path, fmt: str) -> list[str]:
    """The first row of a label file, cells exactly as written (an empty xlsx cell is '')."""
    if fmt == "xlsx":
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        try:
            row = next(book.worksheets[0].iter_rows(max_row=1, values_only=True), ())
        finally:
            book.close()
        return ["" if v is None else str(v) for v in row]
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    if fmt == "tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(first, delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    return next(csv.reader([first], delimiter=delimiter), [])


def check_label_file_columns(source: Source, source_dir: Path) -> list[Item]:
    """For each `layout.label_files` entry that lists its columns (csv, tsv, xlsx): the file's header must hold
    them, spelled exactly so. The path is tried under the source folder, then under `layout.root`."""
    items = []
    root = source_dir / source.layout.root if source.layout.root else source_dir
    for entry in source.layout.label_files:
        if not entry.columns or entry.format not in ("csv", "tsv", "xlsx"):
            continue
        path = next((p for p in (source_dir / entry.path, root / entry.path) if p.is_file()), None)
        if path is None:
            continue  # not every listed file is needed; the walk below fails on one that is
        try:
            header = _header(path, entry.format)
        except (OSError, ValueError, KeyError) as exc:
            items.append(Item("label-file", entry.path, "columns differ", f"the header cannot be read: {exc}"))
            continue
        missing = [c for c in entry.columns if c not in header]
        if missing:
            items.append(Item("label-file", entry.path, "columns differ",
                              f"lacks {missing} that layout.label_files lists; its header is {header}"))
        else:
            items.append(Item("label-file", entry.path, "columns as listed", f"{len(header)} columns"))
    return items


def check_labels(source: Source, source_dir: Path) -> Item:
    """Walk the tree with the source's adapter, as a build does but without pixels: label files parse and have
    their columns, and every label the items carry is listed in the manifest (mapped or excluded)."""
    from ..sources import AdapterError, RawItem, adapter_for
    from ..sources.base import item_labels
    from ..sources.tables import TableError

    known = set(source.labels.map) | set(source.labels.exclude)
    seen: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    examples: dict[str, str] = {}
    items = 0
    try:
        for entry in adapter_for(source).entries(source_dir):
            if not isinstance(entry, RawItem):
                continue
            items += 1
            for label in item_labels(entry):
                seen[label] += 1
                if label not in known:
                    unknown[label] += 1
                    examples.setdefault(label, entry.key)
    except (AdapterError, TableError) as exc:
        return Item("labels", "layout.params", "label file problem", str(exc))
    if unknown:
        listed = "; ".join(f"{label!r} x{n} (e.g. {examples[label]})" for label, n in unknown.most_common(10))
        return Item("labels", "labels.vocabulary", "unknown labels",
                    f"{sum(unknown.values())} label value(s) of {items} item(s) are not in the manifest: {listed}; "
                    "add each to labels.vocabulary and map or exclude it (a build quarantines them)")
    counts = ", ".join(f"{label} {n}" for label, n in sorted(seen.items()))
    return Item("labels", "labels.vocabulary", "labels known", f"{items} item(s); {counts or 'no labels'}")


def inspect(registry: Registry, source_id: str, data_dir: Path, *, layout_root: str | None = None,
            labels: bool = True) -> SourceReport:
    """The report of one source; `layout_root` overrides the manifest's (as `--layout-root` does); `labels`
    walks the tree to check label files and values once the tree is there."""
    source = registry.sources[source_id]
    if layout_root is not None:
        source = with_layout_root(source, layout_root)
    data_dir = Path(data_dir)
    report = SourceReport(source_id, source.access.kind.value)
    checks = check_expected(source, data_dir)
    for check in checks:
        report.items.append(Item("expected", check.path, check.status, check.description))
    tree = source
    if source_dir(data_dir, source_id).is_dir():  # layout.root counts too, even when expected_files are there
        drift = find_drift(source, source_dir(data_dir, source_id))
        if drift is not None:
            report.drift = drift.lines(source_id, registry.source_files.get(source_id, f"{source_id}.yaml"), data_dir)
            report.layout_root = drift.layout_root
            report.items.append(Item("layout", source.layout.root or ".", "layout drift", report.drift[0]))
            if drift.layout_root is not None and drift.after == drift.total:
                tree = with_layout_root(source, drift.layout_root)
    tree_ok = all(c.ok for c in check_expected(tree, data_dir))
    if tree_ok:
        for copy in find_copies(tree, source_dir(data_dir, source_id)):
            report.items.append(Item("layout", copy.copy, "tree stored twice", copy.describe()))
    for file in source.files:
        if file.extract:
            path = cache_dir(data_dir, source.id) / file.name
            report.items.append(_archive_item(path, file, f".downloads/{source.id}/{file.name}"))
        else:
            report.items.append(_file_item(source_dir(data_dir, source.id) / file.name, file, file.name))
    # Label files and values, once the files are there and verified (a wrong archive's contents prove nothing).
    if labels and tree_ok and not [i for i in report.problems if i.what != "layout"]:
        report.items += check_label_file_columns(tree, source_dir(data_dir, source_id))
        report.items.append(check_labels(tree, source_dir(data_dir, source_id)))
    report.next_step = _next_step(source, report, data_dir, layout_root)
    return report
