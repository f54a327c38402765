"""Issue 15 item 6: a publisher's stated MD5 (Zenodo, figshare, Mendeley record pages) is checked on download and
shown by `medmat doctor`. The expected digest is the published test vector of MD5 (RFC 1321 test suite style:
md5("The quick brown fox jumps over the lazy dog") = 9e107d9d372bb6826bd81d3542a419d6), not one computed here."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medmat.cli import app
from medmat.download.http import DownloadError, DownloadSettings, allowed_hosts, fetch_file
from medmat.registry.models import DownloadFile

from .conftest import TEMPLATE_SOURCE
from .loopback import send_bytes

DATA = b"The quick brown fox jumps over the lazy dog"
MD5 = "9e107d9d372bb6826bd81d3542a419d6"
FAST = DownloadSettings(attempts=1, backoff_s=0.01, max_backoff_s=0.05, timeout_s=5, progress=False)


def _fetch(server, tmp_path, md5: str):
    server.routes["/fox.txt"] = lambda h: send_bytes(h, DATA, content_type="text/plain")
    file = DownloadFile(name="fox.txt", url=server.url("/fox.txt"), md5=md5, extract=False)
    return fetch_file(file, tmp_path / "fox.txt", allowed_hosts([file]), FAST)


def test_stated_md5_is_verified(server, tmp_path):
    fetched = _fetch(server, tmp_path, MD5)
    assert fetched.path.read_bytes() == DATA


def test_wrong_md5_fails_and_the_file_is_deleted(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        _fetch(server, tmp_path, "0" * 32)
    assert f"md5 is {MD5}" in str(info.value) and "deleted" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("md5, status", [(MD5, "verified (publisher's md5)"), ("f" * 32, "wrong hash")])
def test_doctor_shows_the_md5_check(mini_copy, tmp_path, md5, status):
    def change(data):
        data["access"] = {"kind": "open"}
        data["files"] = [{"name": "fox.txt", "url": "https://zenodo.org/records/1/files/fox.txt", "md5": md5,
                          "extract": False}]
        data["expected_files"] = [{"path": "fox.txt"}]
    mini_copy.edit(f"sources/{TEMPLATE_SOURCE}.yaml", change)
    (tmp_path / TEMPLATE_SOURCE).mkdir()
    (tmp_path / TEMPLATE_SOURCE / "fox.txt").write_bytes(DATA)
    result = CliRunner().invoke(app, ["doctor", TEMPLATE_SOURCE, "--data-dir", str(tmp_path), "--json",
                                      "--manifests", str(mini_copy.root)])
    (report,) = json.loads(result.output)
    (item,) = [i for i in report["items"] if i["what"] == "file"]
    assert item["status"] == status
    assert (f"md5 {MD5} matches" in item["detail"]) if status.startswith("verified") else (
        f"md5 is {MD5}" in item["detail"])
