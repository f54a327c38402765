"""Resumable, verified HTTP downloads of the files a manifest lists.

One address at a time (the manifest's `url`, then each of its `mirrors`, in order): the bytes go to
`<name>.part` beside the target, an interrupted transfer resumes with a Range request, and only a file whose size
and sha256 match the manifest is moved into place (atomically, with `os.replace`). Every request, redirects
included, must go to a host the manifest names (or a storage host such a service is known to redirect to);
anything else is refused. A page of HTML where a file was expected (a login, consent or quota page) is reported
as such and never saved as data.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from .. import __version__
from ..registry.models import DownloadFile
from .verify import VerificationError, digests_of, regular_size, sha256_of, verified_by, verify  # noqa: F401

Say = Callable[[str], None]

# Download services that answer a file request with a redirect to their own storage. Reviewed by hand: a
# redirect to a host that is neither named in the manifest nor listed here for a named service is refused.
STORAGE_BACKENDS: dict[str, tuple[str, ...]] = {
    "figshare.com": ("s3-eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com"),
    "github.com": ("objects.githubusercontent.com", "release-assets.githubusercontent.com",
                   "codeload.github.com", "raw.githubusercontent.com"),
    "data.mendeley.com": ("prod-dcd-datasets-cache-zipfiles.s3.eu-west-1.amazonaws.com",
                          "md-datasets-cache-zipfiles-prod.s3.eu-west-1.amazonaws.com",
                          "prod-dcd-datasets-public-files-eu-west-1.s3.eu-west-1.amazonaws.com"),
    "box.com": ("dl.boxcloud.com", "public.boxcloud.com"),
    "dropbox.com": ("dl.dropboxusercontent.com",),
    "zenodo.org": (),
}

_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.IGNORECASE)


class DownloadSettings(BaseModel):
    """How hard to try. Tests shrink the waits; nothing else changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=5, ge=1, description="tries per address before moving to the next mirror")
    backoff_s: float = Field(default=2.0, ge=0, description="first wait after a failed try; doubles each time")
    max_backoff_s: float = Field(default=60.0, ge=0, description="longest wait between tries")
    max_retry_after_s: float = Field(default=600.0, ge=0, description="a longer Retry-After ends this address")
    timeout_s: float = Field(default=60.0, gt=0, description="connect and read timeout of one request")
    chunk_bytes: int = Field(default=1 << 20, ge=1024)
    max_redirects: int = Field(default=10, ge=0)
    deadline_s: float = Field(default=48 * 3600.0, gt=0, description="one file, all tries and mirrors together")
    min_rate_bytes_s: float = Field(default=1024.0, ge=0, description="slower than this over `rate_window_s` "
                                    "counts as a stalled transfer (then retried, resuming)")
    rate_window_s: float = Field(default=60.0, gt=0)
    progress: bool | None = Field(default=None, description="progress bars; None: only on a terminal")


class DownloadError(Exception):
    """Every address of one file failed; `failures` says why, one line per address."""

    def __init__(self, name: str, failures: list[str]):
        self.name = name
        self.failures = failures
        super().__init__(f"could not download {name}:\n" + "\n".join(f"  - {f}" for f in failures))


class _Permanent(Exception):
    """This address will not give the file: move on to the next one."""


class _Transient(Exception):
    """Worth another try at the same address, after `retry_after` seconds if the server said so."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class Fetched:
    name: str
    path: Path
    size: int
    sha256: str
    url: str = ""
    notes: list[str] = field(default_factory=list)


# --- hosts ------------------------------------------------------------------------------------------


def allowed_hosts(files: Iterable[DownloadFile], extra: Iterable[str] = ()) -> frozenset[str]:
    """The hosts of every `url` and mirror in `files`, plus `extra` (hosts a person allowed on the command line)."""
    hosts = {h.lower() for h in extra}
    for f in files:
        for url in (f.url, *f.mirrors):
            host = urlsplit(str(url)).hostname
            if host:
                hosts.add(host.lower())
    return frozenset(hosts)


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def host_allowed(host: str | None, allowed: frozenset[str]) -> bool:
    if not host:
        return False
    host = host.lower()
    if host in allowed:
        return True
    for named in allowed:
        for service, backends in STORAGE_BACKENDS.items():
            if _under(named, service) and any(_under(host, b) for b in backends):
                return True
    return False


def shown(url: str) -> str:
    """A URL fit for messages: the query (signed tokens, session ids) left out."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + ("?…" if parts.query else "")


# --- verification -----------------------------------------------------------------------------------


def looks_like_html(head: bytes) -> bool:
    return bool(_HTML_START.match(head[:1024]))


def _is_html_name(name: str) -> bool:
    return name.lower().endswith((".html", ".htm"))


# --- one request ------------------------------------------------------------------------------------


def _state_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def url_key(url: str) -> str:
    """What the resume state records of an address: a digest, so that tokens in a signed URL are never stored."""
    return "sha256:" + hashlib.sha256(url.encode()).hexdigest()


def _read_state(part: Path) -> dict:
    try:
        path = _state_path(part)
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return {}
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _same_address(state: dict, url: str) -> bool:
    return state.get("url") == url_key(url)


def _write_state(part: Path, state: dict) -> None:
    """The resume state, created 0600 (only its owner reads it), written whole then renamed into place."""
    path = _state_path(part)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh)
    os.replace(tmp, path)


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _state_path(part).unlink(missing_ok=True)


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from `bytes 100-199/200` or `bytes */200`."""
    match = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _open(session: requests.Session, url: str, headers: dict, allowed: frozenset[str],
          settings: DownloadSettings) -> requests.Response:
    """GET `url`, following redirects by hand so that every hop is checked against the allowed hosts."""
    for _ in range(settings.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise _Permanent(f"{shown(url)} is not an http(s) address")
        if not host_allowed(parts.hostname, allowed):
            raise _Permanent(
                f"refused to contact {parts.hostname!r} ({shown(url)}): the manifest names no such host "
                f"(allowed: {', '.join(sorted(allowed))}); if it is the right place, put that address in the "
                f"manifest's `url` or `mirrors`, or pass --allow-host {parts.hostname}")
        try:
            resp = session.get(url, headers=headers, stream=True, allow_redirects=False, timeout=settings.timeout_s)
        except requests.exceptions.Timeout as exc:
            raise _Transient(f"timed out ({type(exc).__name__})") from None
        except requests.exceptions.ConnectionError as exc:
            raise _Transient(f"cannot connect to {parts.hostname} ({type(exc).__name__})") from None
        if resp.is_redirect:
            target = urljoin(url, resp.headers["Location"])
            resp.close()
            if parts.scheme == "https" and urlsplit(target).scheme != "https":
                raise _Permanent(f"{shown(url)} redirects from https to plain http ({shown(target)}); refused")
            url = target
            continue
        return resp
    raise _Permanent(f"more than {settings.max_redirects} redirects")


def _html_message(name: str, url: str) -> str:
    return (f"got an HTML page instead of {name} from {shown(url)} (a login, consent, quota or error page?); "
            f"nothing was saved; open the address in a browser to see what it asks for")


def _transfer(session, url: str, file: DownloadFile, part: Path, allowed, settings, say: Say) -> None:
    """One GET of `url` into `part`, resuming from the bytes already there when they came from this address."""
    state = _read_state(part)
    if part.exists() or part.is_symlink():
        try:
            regular_size(part)
        except VerificationError:
            part.unlink()
    offset = part.stat().st_size if part.exists() else 0
    if offset and not _same_address(state, url):
        _discard(part)  # bytes from another address or an unknown origin: never append to them
        offset = 0
    headers = {"Accept-Encoding": "identity", "User-Agent": f"medmat/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if state.get("validator"):
            headers["If-Range"] = state["validator"]
    resp = _open(session, url, headers, allowed, settings)
    with resp:
        status = resp.status_code
        if status == 416 and offset:
            _, total = _content_range(resp.headers.get("Content-Range"))
            if total == offset:
                return  # every byte is already here
            _discard(part)
            raise _Transient("the partial file did not match the server's copy; starting again", retry_after=0)
        if status in (404, 410):
            raise _Permanent(f"not found (HTTP {status}): the file moved or the link is dead")
        if status in (401, 403):
            raise _Permanent(f"access denied (HTTP {status}): the address needs a login, or the link expired")
        if status == 429:
            raise _Transient("rate limited (HTTP 429 Too Many Requests)", _retry_after(resp))
        if status >= 500:
            raise _Transient(f"server error (HTTP {status} {resp.reason})", _retry_after(resp))
        if status not in (200, 206):
            raise _Permanent(f"unexpected answer HTTP {status} {resp.reason}")
        ctype = resp.headers.get("Content-Type", "").lower()
        if status == 200 and "text/html" in ctype and not _is_html_name(file.name):
            _discard(part)
            raise _Permanent(_html_message(file.name, url))
        encoding = resp.headers.get("Content-Encoding", "").strip().lower()
        decode = encoding not in ("", "identity")
        validator = resp.headers.get("ETag") or resp.headers.get("Last-Modified")
        if status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                _discard(part)
                raise _Transient(f"the server resumed at byte {start}, not {offset}; starting again", retry_after=0)
            if decode or (state.get("validator") and validator and validator != state["validator"]):
                _discard(part)  # the file changed since the first bytes came (or the rest is encoded): start over
                raise _Transient("the server's copy changed since the partial download (or it sent an encoded "
                                 "range); starting again", retry_after=0)
            mode = "ab"
        else:
            if offset:
                say(f"{file.name}: the server sent the whole file instead of the rest; starting again")
            offset, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            # With a Content-Encoding (asked for identity, got gzip anyway), the length is of the encoded bytes:
            # the file is the decoded stream, so its length is unknown here.
            total = int(length) if length and length.isdigit() and not decode else None
        _write_state(part, {"url": url_key(url), "validator": validator, "total": total, "decoded": decode})
        written = offset
        disable = None if settings.progress is None else not settings.progress
        try:
            with open(part, mode) as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                               unit_divisor=1024, desc=file.name, leave=False,
                                               disable=disable) as bar:
                first = offset == 0
                window_start = time.monotonic()
                window_bytes = 0
                # read1 returns what has arrived (up to a chunk): a trickling server cannot hold one read forever.
                while chunk := resp.raw.read1(settings.chunk_bytes, decode_content=decode):
                    if first and looks_like_html(chunk) and not _is_html_name(file.name):
                        out.close()
                        _discard(part)
                        raise _Permanent(_html_message(file.name, url))
                    first = False
                    out.write(chunk)
                    written += len(chunk)
                    window_bytes += len(chunk)
                    bar.update(len(chunk))
                    now = time.monotonic()
                    if now > deadline_of(settings):
                        raise _Permanent(f"over the {settings.deadline_s:.0f} s deadline for this file after "
                                         f"{written:,} bytes (kept in {part.name}; run again to resume)")
                    if now - window_start >= settings.rate_window_s:
                        rate = window_bytes / (now - window_start)
                        if rate < settings.min_rate_bytes_s:
                            raise _Transient(f"the transfer stalled at {rate:,.0f} bytes/s (under "
                                             f"{settings.min_rate_bytes_s:,.0f} bytes/s for "
                                             f"{now - window_start:.0f} s) after {written:,} bytes")
                        window_start, window_bytes = now, 0
                out.flush()
                os.fsync(out.fileno())
        except (requests.exceptions.RequestException, Urllib3HTTPError, ConnectionError, TimeoutError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno in (28, 30, 13, 27):  # ENOSPC, EROFS, EACCES, EFBIG
                raise _Permanent(f"cannot write {part}: {exc.strerror}; free space or fix permissions, then run "
                                 "again (the bytes received so far are kept)") from None
            raise _Transient(f"the connection dropped after {written:,} bytes ({type(exc).__name__})") from None
        if total is not None and written < total:
            raise _Transient(f"the transfer stopped after {written:,} of {total:,} bytes")


_DEADLINE: dict[int, float] = {}


def deadline_of(settings: DownloadSettings) -> float:
    return _DEADLINE.get(id(settings), float("inf"))


def _from_address(session, url, file, part, allowed, settings, say) -> None:
    for attempt in range(1, settings.attempts + 1):
        if time.monotonic() > deadline_of(settings):
            raise _Permanent(f"over the {settings.deadline_s:.0f} s deadline for this file")
        try:
            _transfer(session, url, file, part, allowed, settings, say)
            return
        except _Transient as exc:
            if attempt == settings.attempts:
                raise _Permanent(f"gave up after {attempt} tries; last: {exc}") from None
            if exc.retry_after is not None and exc.retry_after > settings.max_retry_after_s:
                raise _Permanent(f"{exc}; the server asks to wait {exc.retry_after:.0f} s, longer than "
                                 f"{settings.max_retry_after_s:.0f} s: run the same command again later") from None
            wait = exc.retry_after if exc.retry_after is not None else min(
                settings.backoff_s * 2 ** (attempt - 1), settings.max_backoff_s)
            say(f"{file.name}: {exc}; try {attempt + 1}/{settings.attempts} in {wait:.1f} s")
            time.sleep(wait)


def fetch_file(file: DownloadFile, target: Path, allowed: frozenset[str], settings: DownloadSettings = DownloadSettings(),
               *, session: requests.Session | None = None, say: Say = lambda _: None) -> Fetched:
    """Download `file` to `target`, trying its url then each mirror; returns the verified size and sha256.

    The bytes stay in `<target>.part` until they match the manifest's size and sha256 (when it records them),
    then move into place at once. A file that fails verification is deleted, never used.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    _DEADLINE[id(settings)] = time.monotonic() + settings.deadline_s
    own_session = session is None
    session = session or requests.Session()
    failures: list[str] = []
    try:
        for url in [str(file.url), *(str(m) for m in file.mirrors)]:
            for fresh in (False, True):
                resumed = part.exists() and part.stat().st_size > 0 and _same_address(_read_state(part), url)
                try:
                    _from_address(session, url, file, part, allowed, settings, say)
                except _Permanent as exc:
                    failures.append(f"{shown(url)}: {exc}")
                    break
                try:
                    size, digest = verify(part, file, settings.chunk_bytes)
                except VerificationError as exc:
                    _discard(part)
                    if resumed and not fresh:
                        say(f"{file.name}: {exc} after resuming; downloading it again from the start")
                        continue
                    failures.append(f"{shown(url)}: downloaded, but the {exc}; the file was deleted")
                    break
                os.replace(part, target)
                _state_path(part).unlink(missing_ok=True)
                note = (f"{file.name}: UNVERIFIED - the manifest records no sha256 or md5; this download has sha256 "
                        f"{digest} ({size:,} bytes) - record it with --register-checksums")
                notes = [] if verified_by(file) else [note]
                return Fetched(file.name, target, size, digest, url, notes)
    finally:
        if own_session:
            session.close()
    raise DownloadError(file.name, failures)
