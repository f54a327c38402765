"""`medmat download`: resumable verified HTTP against a real server on 127.0.0.1, Kaggle's client, safety."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmat.cli import app
from medmat.download.checksums import ChecksumError, plan_edit
from medmat.download.http import DownloadError, DownloadSettings, allowed_hosts, fetch_file, url_key
from medmat.download.redact import Redactor
from medmat.download.run import download_source
from medmat.validation import validate
from medmat.registry.models import DownloadFile

from .conftest import TEMPLATE_SOURCE
from .loopback import send_bytes, send_status

FAST = DownloadSettings(attempts=3, backoff_s=0.01, max_backoff_s=0.05, timeout_s=5, chunk_bytes=4096,
                        progress=False)
DATA = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def waits(monkeypatch):
    """Record the back-off waits instead of sleeping them (the policy is what is under test)."""
    seen: list[float] = []
    monkeypatch.setattr("medmat.download.http.time.sleep", seen.append)
    return seen


def dfile(url, *, mirrors=(), size=len(DATA), sha256=SHA, name="data.bin", extract=False) -> DownloadFile:
    return DownloadFile(name=name, url=url, mirrors=list(mirrors), size=size, sha256=sha256, extract=extract)


def fetch(file: DownloadFile, tmp_path: Path, **kw):
    return fetch_file(file, tmp_path / file.name, allowed_hosts([file], kw.pop("extra", ())), FAST, **kw)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# --- resumable, verified transfers -----------------------------------------------------------------


def test_interrupted_transfer_resumes_from_where_it_stopped(server, tmp_path, waits):
    calls = []

    def route(h):
        calls.append(h.headers.get("Range"))
        send_bytes(h, DATA, cut_at=40_000 if len(calls) == 1 else None)

    server.routes["/data.bin"] = route
    got = fetch(dfile(server.url("/data.bin")), tmp_path)
    assert got.path.read_bytes() == DATA and got.sha256 == SHA
    assert calls == [None, "bytes=40000-"], "the second request must ask only for the missing bytes"
    assert len(waits) == 1
    assert not (tmp_path / "data.bin.part").exists() and not (tmp_path / "data.bin.part.json").exists()


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path, waits):
    server.routes["/data.bin"] = lambda h: send_bytes(h, DATA)
    url = server.url("/data.bin")
    (tmp_path / "data.bin.part").write_bytes(DATA[:70_000])
    (tmp_path / "data.bin.part.json").write_text(json.dumps({"url": url_key(url), "validator": '"v1"', "total": len(DATA)}))
    got = fetch(dfile(url), tmp_path)
    assert got.path.read_bytes() == DATA
    [hit] = server.hits("/data.bin")
    assert hit.headers["Range"] == "bytes=70000-" and hit.headers["If-Range"] == '"v1"'


def test_corrupted_download_fails_verification_and_is_not_used(server, tmp_path, waits):
    bad = bytearray(DATA)
    bad[5000] ^= 0xFF
    server.routes["/data.bin"] = lambda h: send_bytes(h, bytes(bad))
    with pytest.raises(DownloadError) as info:
        fetch(dfile(server.url("/data.bin")), tmp_path)
    message = str(info.value)
    assert "sha256 is " in message and f"the manifest says {SHA}" in message and "deleted" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "neither the target nor the .part may remain"


def test_corrupt_partial_is_discarded_and_fetched_again_from_the_start(server, tmp_path, waits):
    server.routes["/data.bin"] = lambda h: send_bytes(h, DATA)
    url = server.url("/data.bin")
    (tmp_path / "data.bin.part").write_bytes(b"\0" * 70_000)  # wrong bytes that a resume would keep
    (tmp_path / "data.bin.part.json").write_text(json.dumps({"url": url_key(url), "validator": '"v1"'}))
    got = fetch(dfile(url), tmp_path)
    assert got.path.read_bytes() == DATA
    assert [h.headers.get("Range") for h in server.hits("/data.bin")] == ["bytes=70000-", None]


def test_wrong_size_is_caught_before_hashing(server, tmp_path, waits):
    server.routes["/data.bin"] = lambda h: send_bytes(h, DATA[:-1])
    with pytest.raises(DownloadError, match="size is 102,399 bytes, the manifest says 102,400"):
        fetch(dfile(server.url("/data.bin")), tmp_path)


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_instead_of_the_file_is_detected(server, tmp_path, waits, content_type):
    page = b"<!DOCTYPE html>\n<html><body>Please sign in to download</body></html>"
    server.routes["/data.zip"] = lambda h: send_bytes(h, page, content_type=content_type)
    with pytest.raises(DownloadError, match="got an HTML page instead of data.zip"):
        fetch(dfile(server.url("/data.zip"), name="data.zip", size=None, sha256=None), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert len(server.hits("/data.zip")) == 1, "an HTML page is not retried"


def test_404_is_final_at_once(server, tmp_path, waits):
    with pytest.raises(DownloadError) as info:
        fetch(dfile(server.url("/gone.bin")), tmp_path)
    assert "not found (HTTP 404)" in str(info.value)
    assert len(server.hits("/gone.bin")) == 1 and waits == []


def test_429_waits_as_long_as_retry_after_says(server, tmp_path, waits):
    answers = iter([429, 429, 200])

    def route(h):
        status = next(answers)
        if status == 429:
            send_status(h, 429, b"slow down", {"Retry-After": "7"})
        else:
            send_bytes(h, DATA)

    server.routes["/data.bin"] = route
    got = fetch(dfile(server.url("/data.bin")), tmp_path)
    assert got.sha256 == SHA
    assert waits == [7.0, 7.0]


def test_429_with_a_retry_after_too_long_gives_up_with_a_clear_message(server, tmp_path, waits):
    server.routes["/data.bin"] = lambda h: send_status(h, 429, b"", {"Retry-After": "86400"})
    with pytest.raises(DownloadError) as info:
        fetch(dfile(server.url("/data.bin")), tmp_path)
    assert "rate limited (HTTP 429" in str(info.value) and "run the same command again later" in str(info.value)
    assert waits == []


def test_5xx_is_retried_with_growing_back_off_then_reported(server, tmp_path, waits):
    server.routes["/data.bin"] = lambda h: send_status(h, 503, b"down for maintenance")
    with pytest.raises(DownloadError) as info:
        fetch(dfile(server.url("/data.bin")), tmp_path)
    assert "gave up after 3 tries; last: server error (HTTP 503" in str(info.value)
    assert len(server.hits("/data.bin")) == 3
    assert waits == [0.01, 0.02]


def test_a_500_then_success_recovers(server, tmp_path, waits):
    answers = iter([500, 200])
    server.routes["/data.bin"] = lambda h: (send_status(h, 500) if next(answers) == 500 else send_bytes(h, DATA))
    assert fetch(dfile(server.url("/data.bin")), tmp_path).sha256 == SHA
    assert len(waits) == 1


def test_mirrors_are_tried_in_order(server, tmp_path, waits):
    server.routes["/primary"] = lambda h: send_status(h, 404)
    server.routes["/mirror-1"] = lambda h: send_status(h, 502)
    server.routes["/mirror-2"] = lambda h: send_bytes(h, DATA)
    server.routes["/mirror-3"] = lambda h: send_bytes(h, DATA)
    file = dfile(server.url("/primary"), mirrors=[server.url(p) for p in ("/mirror-1", "/mirror-2", "/mirror-3")])
    got = fetch(file, tmp_path)
    assert got.url.endswith("/mirror-2") and got.sha256 == SHA
    assert [s.path for s in server.seen] == ["/primary", "/mirror-1", "/mirror-1", "/mirror-1", "/mirror-2"]


def test_every_failure_is_listed_when_all_addresses_fail(server, tmp_path, waits):
    server.routes["/a"] = lambda h: send_status(h, 403)
    file = dfile(server.url("/a"), mirrors=[server.url("/b")])
    with pytest.raises(DownloadError) as info:
        fetch(file, tmp_path)
    assert info.value.failures[0].endswith("access denied (HTTP 403): the address needs a login, or the link expired")
    assert "/b: not found (HTTP 404)" in info.value.failures[1]


def test_redirects_only_to_hosts_the_manifest_names(server, tmp_path, waits):
    port = server.server.server_address[1]
    server.routes["/go"] = lambda h: send_status(h, 302, headers={"Location": f"http://localhost:{port}/data.bin"})
    server.routes["/data.bin"] = lambda h: send_bytes(h, DATA)
    with pytest.raises(DownloadError, match="refused to contact 'localhost'"):
        fetch(dfile(server.url("/go")), tmp_path)
    assert server.hits("/data.bin") == [], "the unnamed host was never contacted"
    assert fetch(dfile(server.url("/go")), tmp_path, extra=["localhost"]).sha256 == SHA


def test_hosts_come_from_urls_and_mirrors_only():
    file = DownloadFile(name="x.zip", url="https://zenodo.org/records/1/files/x.zip",
                        mirrors=["https://example.org/x.zip"])
    assert allowed_hosts([file]) == {"zenodo.org", "example.org"}


# --- whole sources: archives, layout, checksums ------------------------------------------------------


def open_source(copy, files: list[dict], expected: list[dict]):
    def change(data):
        data["access"] = {"kind": "open"}
        data["files"] = files
        data["expected_files"] = expected
    copy.edit(f"sources/{TEMPLATE_SOURCE}.yaml", change)
    registry, problems = validate(copy.root)
    assert not problems, problems
    return registry


@pytest.mark.parametrize("evil", ["../escape.txt", "/tmp/medmat-absolute.txt"])
def test_archive_with_unsafe_paths_is_refused(server, tmp_path, mini_copy, waits, evil):
    payload = zip_bytes({"good/a.txt": b"ok", evil: b"gotcha"})
    server.routes["/evil.zip"] = lambda h: send_bytes(h, payload)
    registry = open_source(mini_copy, [{"name": "evil.zip", "url": server.url("/evil.zip")}], [{"path": "good/"}])
    data = tmp_path / "data"
    result = download_source(registry, TEMPLATE_SOURCE, data, FAST)
    assert result.status == "failed"
    assert any("refused to extract evil.zip" in line and "refusing to extract" in line for line in result.lines)
    assert not (data / TEMPLATE_SOURCE / "good").exists(), "nothing from an unsafe archive is written"
    assert not (tmp_path / "escape.txt").exists() and not (data / "escape.txt").exists()
    assert not Path("/tmp/medmat-absolute.txt").exists()


def test_open_source_is_downloaded_extracted_and_checked(server, tmp_path, mini_copy, waits):
    part1 = zip_bytes({"images/1.png": b"one", "labels.csv": b"path,label\n"})
    part2 = zip_bytes({"images/2.png": b"two"})  # unpacks into the same folder as part 1
    server.routes["/p1.zip"] = lambda h: send_bytes(h, part1)
    server.routes["/p2.zip"] = lambda h: send_bytes(h, part2)
    server.routes["/extra.csv"] = lambda h: send_bytes(h, b"a,b\n", content_type="text/csv")
    files = [{"name": "p1.zip", "url": server.url("/p1.zip")}, {"name": "p2.zip", "url": server.url("/p2.zip")},
             {"name": "extra.csv", "url": server.url("/extra.csv"), "extract": False}]
    registry = open_source(mini_copy, files, [{"path": "images/"}, {"path": "labels.csv"}, {"path": "extra.csv"}])
    data = tmp_path / "data"
    result = download_source(registry, TEMPLATE_SOURCE, data, FAST)
    assert result.status == "ready", result.lines
    root = data / TEMPLATE_SOURCE
    assert sorted(p.name for p in (root / "images").iterdir()) == ["1.png", "2.png"]
    assert (root / "extra.csv").read_bytes() == b"a,b\n"
    assert (data / ".downloads" / TEMPLATE_SOURCE / "p1.zip").read_bytes() == part1
    assert result.checksums["p2.zip"] == (len(part2), hashlib.sha256(part2).hexdigest())
    assert any("UNVERIFIED - the manifest records no sha256 or md5" in line for line in result.lines)
    # A second run uses what is there and contacts nobody.
    before = len(server.seen)
    assert download_source(registry, TEMPLATE_SOURCE, data, FAST).status == "ready"
    assert len(server.seen) == before


def test_archives_can_be_dropped_after_extraction_and_are_not_fetched_again(server, tmp_path, mini_copy, waits):
    payload = zip_bytes({"images/1.png": b"one"})
    server.routes["/p.zip"] = lambda h: send_bytes(h, payload)
    registry = open_source(mini_copy, [{"name": "p.zip", "url": server.url("/p.zip")}], [{"path": "images/"}])
    data = tmp_path / "data"
    assert download_source(registry, TEMPLATE_SOURCE, data, FAST, keep_archives=False).status == "ready"
    assert not (data / ".downloads" / TEMPLATE_SOURCE / "p.zip").exists()
    assert download_source(registry, TEMPLATE_SOURCE, data, FAST).status == "ready"
    assert len(server.hits("/p.zip")) == 1


def test_verified_file_in_a_format_medmat_cannot_unpack_asks_for_a_manual_step(server, tmp_path, mini_copy, waits):
    rar = b"Rar!\x1a\x07\x00" + b"\0" * 64
    server.routes["/x.rar"] = lambda h: send_bytes(h, rar)
    registry = open_source(mini_copy, [{"name": "x.rar", "url": server.url("/x.rar")}], [{"path": "images/"}])
    data = tmp_path / "data"
    result = download_source(registry, TEMPLATE_SOURCE, data, FAST)
    assert result.status == "action needed"
    assert "is not a zip or tar archive" in result.lines[-1] and "7z x" in result.lines[-1]
    assert (data / ".downloads" / TEMPLATE_SOURCE / "x.rar").read_bytes() == rar


def test_archive_that_misses_expected_files_is_reported(server, tmp_path, mini_copy, waits):
    payload = zip_bytes({"other/1.png": b"x"})
    server.routes["/x.zip"] = lambda h: send_bytes(h, payload)
    registry = open_source(mini_copy, [{"name": "x.zip", "url": server.url("/x.zip")}], [{"path": "images/"}])
    result = download_source(registry, TEMPLATE_SOURCE, tmp_path / "data", FAST)
    assert result.status == "failed" and "images/ (missing)" in result.lines[-1]


def test_register_checksums_writes_a_minimal_reviewable_diff(server, tmp_path, mini_copy):
    payload = zip_bytes({"images/1.png": b"one"})
    server.routes["/p.zip"] = lambda h: send_bytes(h, payload)
    registry = open_source(mini_copy, [{"name": "p.zip", "url": server.url("/p.zip")}], [{"path": "images/"}])
    manifest = mini_copy.path(f"sources/{TEMPLATE_SOURCE}.yaml")
    # A comment and odd wrapping elsewhere in the file must survive untouched.
    original = "# reviewed by hand\n" + manifest.read_text()
    manifest.write_text(original)
    runner = CliRunner()
    args = ["download", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "data"), "--manifests", str(mini_copy.root),
            "--retries", "1", "--backoff", "0"]
    result = runner.invoke(app, args + ["--register-checksums"])
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256(payload).hexdigest()
    after = manifest.read_text()
    added = [l for l in after.splitlines() if l not in original.splitlines()]
    assert added == [f"  size: {len(payload)}", f"  sha256: {digest}"] or \
        [a.strip() for a in added] == [f"size: {len(payload)}", f"sha256: {digest}"]
    assert len(after.splitlines()) == len(original.splitlines()) + 2 and after.startswith("# reviewed by hand\n")
    assert f"+    sha256: {digest}" in result.output or f"+  sha256: {digest}" in result.output
    registry, problems = validate(mini_copy.root)
    assert not problems and registry.sources[TEMPLATE_SOURCE].files[0].sha256 == digest
    # From now on the recorded hash is enforced: a changed upstream file is refused.
    server.routes["/p.zip"] = lambda h: send_bytes(h, zip_bytes({"images/1.png": b"eno"}))  # same size, other bytes
    again = runner.invoke(app, ["download", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "fresh"), "--manifests",
                                str(mini_copy.root), "--retries", "1", "--backoff", "0"])
    assert again.exit_code == 1 and "sha256 is" in again.output and f"the manifest says {digest}" in again.output


def test_flow_style_entries_get_inline_checksums_and_conflicts_are_refused():
    text = ('files:\n  - {name: a.tar.gz, url: "https://h.org/a?x=1,2"}  # first\n'
            "  - {name: b.zip, url: https://h.org/b, size: 3}\n")
    new, recorded = plan_edit(text, {"a.tar.gz": (10, "a" * 64), "b.zip": (3, "b" * 64)})
    assert new == ('files:\n  - {name: a.tar.gz, url: "https://h.org/a?x=1,2", size: 10, sha256: ' + "a" * 64
                   + "}  # first\n  - {name: b.zip, url: https://h.org/b, size: 3, sha256: " + "b" * 64 + "}\n")
    assert len(recorded) == 3
    with pytest.raises(ChecksumError, match="records size 3, but the verified download has 4"):
        plan_edit(text, {"b.zip": (4, "b" * 64)})


# --- Kaggle ------------------------------------------------------------------------------------------

KEY = "c0ffee5ecret0123456789abcdefkey99"
USER = "medmat-tester"
KAGGLE_ZIP = zip_bytes({
    "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/Cyst/a.jpg": b"jpg",
    "kidneyData.csv": b"image_id,Class\n",
})


@pytest.fixture
def kaggle_env(server, monkeypatch, tmp_path):
    """Kaggle's real client, pointed at the loopback server, with credentials only in the environment."""
    import kagglesdk.kaggle_env as kenv

    for name in list(__import__("os").environ):
        if name.startswith("KAGGLE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    monkeypatch.setitem(kenv._env_to_endpoint, kenv.KaggleEnv.PROD, server.base)
    auth = "Basic " + base64.b64encode(f"{USER}:{KEY}".encode()).decode()

    def dataset(h):
        if h.headers.get("Authorization") != auth:
            send_status(h, 401, b'{"code": 401, "message": "Unauthenticated"}', content_type="application/json")
        else:
            send_status(h, 302, headers={"Location": "/storage/dataset.zip"})

    def competition(h):
        # A hostile server that echoes the credentials back: they still must not reach any output.
        message = json.dumps({"code": 403, "message": f"You must accept the rules ({h.headers.get('Authorization')}, {KEY})"})
        send_status(h, 403, message.encode(), content_type="application/json")

    server.routes["/v1/datasets.DatasetApiService/DownloadDataset"] = dataset
    server.routes["/v1/competitions.CompetitionApiService/DownloadDataFiles"] = competition
    server.routes["/storage/dataset.zip"] = lambda h: send_bytes(h, KAGGLE_ZIP, content_type="application/zip")
    return server


def _no_secret_anywhere(*texts: str, folder: Path | None = None) -> None:
    encoded = base64.b64encode(f"{USER}:{KEY}".encode()).decode()
    for text in texts:
        assert KEY not in text and encoded not in text
    if folder is not None:
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert KEY.encode() not in data and encoded.encode() not in data, path


def test_kaggle_dataset_downloads_through_kaggles_client(kaggle_env, tmp_path, mini_copy, caplog):
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "data"
    result = CliRunner().invoke(app, ["download", TEMPLATE_SOURCE, "--data-dir", str(data), "--manifests",
                                      str(mini_copy.root)])
    assert result.exit_code == 0, result.output
    assert f"{TEMPLATE_SOURCE}: ready" in result.output
    root = data / TEMPLATE_SOURCE
    assert (root / "kidneyData.csv").is_file()
    assert (root / "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/Cyst/a.jpg").is_file()
    [post] = kaggle_env.hits("/v1/datasets.DatasetApiService/DownloadDataset")
    assert json.loads(post.body) == {"ownerSlug": "nazmul0087", "datasetSlug": "ct-kidney-dataset-normal-cyst-tumor-and-stone"}
    assert not list((data / ".downloads").rglob("*.part"))
    _no_secret_anywhere(result.output, caplog.text, folder=data)


def test_kaggle_competition_rules_message_and_no_key_in_any_output(kaggle_env, tmp_path, mini_copy, caplog):
    caplog.set_level(logging.DEBUG)

    def change(d):
        d["access"] = {"kind": "kaggle-competition", "kaggle": "kidney-challenge"}
    mini_copy.edit(f"sources/{TEMPLATE_SOURCE}.yaml", change)
    result = CliRunner().invoke(app, ["download", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "data"),
                                      "--manifests", str(mini_copy.root)])
    assert result.exit_code == 1
    assert "accept its rules" in result.output or "accept the rules" in result.output.lower()
    assert "https://www.kaggle.com/competitions/kidney-challenge/rules" in result.output
    _no_secret_anywhere(result.output, caplog.text, folder=tmp_path / "data")


def test_kaggle_without_credentials_prints_numbered_steps(kaggle_env, monkeypatch, tmp_path, mini_copy):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    result = CliRunner().invoke(app, ["download", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "data"),
                                      "--manifests", str(mini_copy.root)])
    assert result.exit_code == 1
    assert "action needed" in result.output and "no Kaggle credentials were found" in result.output
    assert "1. Sign in at https://www.kaggle.com" in result.output and "~/.kaggle/kaggle.json" in result.output
    assert kaggle_env.seen == [], "nothing is sent without credentials"


def test_kaggle_rejected_key_is_named_by_origin_not_value(kaggle_env, monkeypatch, tmp_path, mini_copy, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    (tmp_path / "home" / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": USER, "key": KEY[::-1]}))
    result = CliRunner().invoke(app, ["download", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "data"),
                                      "--manifests", str(mini_copy.root)])
    assert result.exit_code == 1
    assert "Kaggle refused the credentials from" in result.output and "kaggle.json (HTTP 401)" in result.output
    assert KEY[::-1] not in result.output and KEY[::-1] not in caplog.text


def test_redactor_scrubs_streams_and_logs(capsys, caplog):
    caplog.set_level(logging.DEBUG)
    redactor = Redactor([KEY], [(USER, KEY)])
    encoded = base64.b64encode(f"{USER}:{KEY}".encode()).decode()
    with redactor.guard():
        print(f"Authorization: Basic {encoded}")
        import sys
        sys.stderr.write(f"key={KEY}\n")
        logging.getLogger("kaggle.api.kaggle_api_extended").debug("token %s", KEY)
    out = capsys.readouterr()
    _no_secret_anywhere(out.out, out.err, caplog.text)
    assert "Authorization: Basic ***" in out.out and "key=***" in out.err and "token ***" in caplog.text
