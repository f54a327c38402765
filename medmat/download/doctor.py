"""What each source needs under DIR/<source-id>/, what is there, what is missing or wrong, and the next step.

Checked: every `expected_files` entry (a trailing / asks for a non-empty folder); every file of `files` that is
not an archive (present, size, sha256); every archive kept under DIR/.downloads/ (size and sha256, trusted from
its marker while the file is unchanged) and whether it was extracted. A source is ready when nothing is missing
or wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..registry import Registry
from ..registry.models import AccessKind, Source
from . import kaggle
from .http import VerificationError, verified_by, verify
from .layout import cache_dir, check_expected, marker_matches, source_dir

UNVERIFIED = "present, UNVERIFIED (the manifest records no sha256 or md5)"
OK_STATES = {"present", "verified", "verified (publisher's md5)", UNVERIFIED, "extracted", "not downloaded",
             "downloaded, not extracted"}


@dataclass
class Item:
    what: str  # "expected" | "file" | "archive"
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
                "next_step": self.next_step}


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
    return Item("file", shown, "verified" if how == "sha256" else "verified (publisher's md5)", f"{size:,} bytes")


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


def _next_step(source: Source, report: SourceReport, data_dir: Path) -> str:
    if report.ok:
        return f"ready: medmat build {source.id} --data-dir {data_dir} --out OUT"
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


def inspect(registry: Registry, source_id: str, data_dir: Path) -> SourceReport:
    source = registry.sources[source_id]
    data_dir = Path(data_dir)
    report = SourceReport(source_id, source.access.kind.value)
    for check in check_expected(source, data_dir):
        report.items.append(Item("expected", check.path, check.status, check.description))
    for file in source.files:
        if file.extract:
            path = cache_dir(data_dir, source.id) / file.name
            report.items.append(_archive_item(path, file, f".downloads/{source.id}/{file.name}"))
        else:
            report.items.append(_file_item(source_dir(data_dir, source.id) / file.name, file, file.name))
    report.next_step = _next_step(source, report, data_dir)
    return report
