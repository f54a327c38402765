"""Lay out DIR/<source-id>/ for one source: fetch, verify, extract, then check the expected files.

Open sources go through `http.fetch_file`, Kaggle ones through `kaggle.download`, and the rest get the numbered
steps of `manual`. Archives are kept (verified) under DIR/.downloads/<source-id>/ and unpacked with
`medmat.download.extract`, which merges into DIR/<source-id>/, so several archives can fill one folder (NIH
ChestX-ray14's twelve parts all unpack into images/).
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .extract import UnsafeArchiveError, extract
from ..registry import Registry
from ..registry.models import AccessKind, DownloadFile, Source
from . import kaggle, manual
from .http import DownloadError, DownloadSettings, VerificationError, allowed_hosts, fetch_file, sha256_of, verify
from .layout import cache_dir, check_expected, marker_matches, source_dir, write_marker

Say = Callable[[str], None]
KAGGLE_KINDS = (AccessKind.kaggle_dataset, AccessKind.kaggle_competition)
MANUAL_KINDS = (AccessKind.registration, AccessKind.credentialed, AccessKind.request)
ARCHIVE_NAMES = (".zip", ".tar", ".tar.gz", ".tgz", ".gz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass
class SourceResult:
    source_id: str
    access: str
    status: str = "ready"  # ready | action needed | failed
    lines: list[str] = field(default_factory=list)
    checksums: dict[str, tuple[int, str]] = field(default_factory=dict)  # file name -> (size, sha256)

    def worse(self, status: str) -> None:
        order = ["ready", "action needed", "failed"]
        if order.index(status) > order.index(self.status):
            self.status = status


class _NeedsAction(Exception):
    pass


def _is_archive(path: Path) -> bool:
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def _set_aside(path: Path, say: Say, why: str) -> None:
    bad = path.with_name(path.name + ".corrupt")
    os.replace(path, bad)
    say(f"{path.name}: {why}; moved aside to {bad.name} and fetched again")


def _ensure_file(source: Source, file: DownloadFile, data_dir: Path, allowed: frozenset[str],
                 settings: DownloadSettings, keep_archives: bool, say: Say, result: SourceResult) -> None:
    root = source_dir(data_dir, source.id)
    if not file.extract:
        target = root / file.name
        if target.exists():
            try:
                result.checksums[file.name] = verify(target, file, settings.chunk_bytes)
                checked = " and verified" if file.sha256 or file.md5 or file.size is not None else ""
                say(f"{source.id}: {file.name} already present{checked}")
                return
            except VerificationError as exc:
                _set_aside(target, say, str(exc))
        fetched = fetch_file(file, target, allowed, settings, say=say)
        result.lines += fetched.notes
        result.checksums[file.name] = (fetched.size, fetched.sha256)
        return

    archive = cache_dir(data_dir, source.id) / file.name
    marker = marker_matches(archive)
    done = all(c.ok for c in check_expected(source, data_dir))
    if marker and marker.get("extracted") and done:
        say(f"{source.id}: {file.name} already downloaded, verified and extracted")
        result.checksums[file.name] = (marker["size"], marker["sha256"])
        return
    size = digest = None
    if archive.exists():
        try:
            if marker:
                size, digest = marker["size"], marker["sha256"]
            else:
                size, digest = verify(archive, file, settings.chunk_bytes)
            say(f"{source.id}: using {archive} (verified)")
        except VerificationError as exc:
            _set_aside(archive, say, str(exc))
    if digest is None:
        fetched = fetch_file(file, archive, allowed, settings, say=say)
        result.lines += fetched.notes
        size, digest = fetched.size, fetched.sha256
    result.checksums[file.name] = (size, digest)
    if not _is_archive(archive):
        write_marker(archive, size, digest, extracted=False, kept=True)
        raise _NeedsAction(f"{file.name} is verified but is not a zip or tar archive (RAR or 7z?), which medmat does "
                           f"not unpack: extract {archive} into {root}/ yourself (e.g. `7z x` or `unrar x`), then run "
                           f"`medmat doctor {source.id} --data-dir {data_dir}`")
    members = extract(archive, root)
    say(f"{source.id}: extracted {len(members)} file(s) from {file.name} into {root}/")
    if not keep_archives:
        archive.unlink()
    write_marker(archive, size, digest, extracted=True, kept=keep_archives)


def _download_open(source, data_dir, settings, extra_hosts, keep_archives, say, result) -> None:
    allowed = allowed_hosts(source.files, extra_hosts)
    for file in source.files:
        try:
            _ensure_file(source, file, data_dir, allowed, settings, keep_archives, say, result)
        except DownloadError as exc:
            result.worse("failed")
            archive_home = source_dir(data_dir, source.id) if not file.extract else cache_dir(data_dir, source.id)
            checks = ", ".join(x for x in (f"size {file.size:,}" if file.size is not None else "",
                                           f"sha256 {file.sha256}" if file.sha256 else "") if x)
            result.lines.append(
                f"{exc}\n  Next steps:\n"
                "    1. Check the connection and run the same command again (a partial file is resumed).\n"
                f"    2. Or fetch {file.name} in a browser from one of the addresses above, or via {source.homepage}.\n"
                f"    3. Put it at {archive_home / file.name}{f' ({checks})' if checks else ''} and run "
                f"`medmat download {source.id} --data-dir {data_dir}`: it is verified"
                f"{' and extracted' if file.extract and file.name.lower().endswith(ARCHIVE_NAMES) else ''} there.")
        except UnsafeArchiveError as exc:
            result.worse("failed")
            result.lines.append(f"refused to extract {file.name}: {exc}. Nothing from it was written to "
                                f"{source_dir(data_dir, source.id)}/; report the archive to the medmat maintainers")
        except _NeedsAction as exc:
            result.worse("action needed")
            result.lines.append(str(exc))
        except OSError as exc:  # the disk or the folder, not the server: one line naming the path and the fix
            from ..prepare.atomic import disk_problem

            result.worse("failed")
            result.lines.append(disk_problem(exc) or f"cannot write {exc.filename}: {exc.strerror}; check the "
                                "folder and run the same command again (partial downloads are resumed)")


def _download_kaggle(source, data_dir, settings, keep_archives, say, result) -> None:
    archive = cache_dir(data_dir, source.id) / kaggle.archive_name(source)
    marker = marker_matches(archive)
    if marker and marker.get("extracted") and all(c.ok for c in check_expected(source, data_dir)):
        say(f"{source.id}: {archive.name} already downloaded and extracted")
        return
    try:
        if not (archive.exists() and zipfile.is_zipfile(archive)):
            say(f"{source.id}: downloading {source.access.kaggle} with Kaggle's client")
            kaggle.download(source, archive, settings)
        else:
            say(f"{source.id}: using {archive}")
        size, digest = archive.stat().st_size, sha256_of(archive)
        members = extract(archive, source_dir(data_dir, source.id))
        say(f"{source.id}: extracted {len(members)} file(s) from {archive.name}")
        if not keep_archives:
            archive.unlink()
        write_marker(archive, size, digest, extracted=True, kept=keep_archives)
    except kaggle.KaggleError as exc:
        no_credentials = "no Kaggle credentials" in str(exc)
        result.worse("action needed" if no_credentials else "failed")
        steps = kaggle.setup_steps(source, data_dir)
        result.lines.append(
            f"{exc}\n  Next steps:\n" + "\n".join(f"    {i}. {s}" for i, s in enumerate(steps, 1))
            + f"\n  Or download the archive in a browser from {kaggle.kaggle_page(source)} and put it at {archive}.")
    except UnsafeArchiveError as exc:
        result.worse("failed")
        result.lines.append(f"refused to extract {archive.name}: {exc}; nothing from it was written")


def download_source(registry: Registry, source_id: str, data_dir: Path,
                    settings: DownloadSettings = DownloadSettings(), *, extra_hosts: Iterable[str] = (),
                    keep_archives: bool = True, say: Say = lambda _: None) -> SourceResult:
    """Fetch what can be fetched for one source, then check its expected files; never raises for a bad download."""
    source = registry.sources[source_id]
    data_dir = Path(data_dir)
    result = SourceResult(source_id, source.access.kind.value)
    kind = source.access.kind
    if kind in MANUAL_KINDS:
        if not all(c.ok for c in check_expected(source, data_dir)):
            result.worse("action needed")
            result.lines.append(manual.render(source, data_dir))
            return result
    elif kind in KAGGLE_KINDS:
        _download_kaggle(source, data_dir, settings, keep_archives, say, result)
    else:
        _download_open(source, data_dir, settings, tuple(extra_hosts), keep_archives, say, result)
    if result.status == "ready":
        missing = [c for c in check_expected(source, data_dir) if not c.ok]
        if missing:
            result.worse("failed")
            result.lines.append(
                f"everything was fetched, but {len(missing)} expected item(s) are not under "
                f"{source_dir(data_dir, source.id)}/: " + ", ".join(f"{c.path} ({c.status})" for c in missing)
                + "; the archive layout may have changed - compare it with the manifest's expected_files and "
                "layout (`medmat doctor` shows the details)")
    return result
