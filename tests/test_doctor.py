"""`medmat doctor`: expected / present / missing per source, exit 1 while anything is missing or wrong; and the
README's whole path for an open source (download from a loopback server, doctor, build, load)."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import pytest
from typer.testing import CliRunner

from medmat.cli import app
from medmat.download.doctor import inspect
from medmat.validation import validate

from . import fakes
from .conftest import TEMPLATE_SOURCE
from .loopback import send_bytes

runner = CliRunner()


def doctor(*args: str):
    return runner.invoke(app, ["doctor", *args])


def test_partly_filled_data_dir_lists_expected_present_missing_and_exits_1(tmp_path):
    data = tmp_path / "data"
    (data / "aptos-2019").mkdir(parents=True)
    (data / "aptos-2019" / "train.csv").write_text("id_code,diagnosis\n")
    (data / "kvasir" / "kvasir-dataset").mkdir(parents=True)  # there, but empty
    result = doctor("aptos-2019", "kvasir", "airogs", "--data-dir", str(data))
    assert result.exit_code == 1
    out = result.output
    for header in ("source", "access", "expected", "present", "missing or wrong"):
        assert header in out
    assert "0 of 3 source(s) ready" in out
    # The table's cells may fold on a narrow terminal; the detail lines below it never wrap.
    assert "train_images/: missing" in out and "kvasir-dataset/: empty" in out and "train_labels.csv: missing" in out
    assert "https://www.kaggle.com/competitions/aptos2019-blindness-detection/rules" in out
    assert f"medmat download kvasir --data-dir {data}" in out

    report = json.loads(doctor("aptos-2019", "--data-dir", str(data), "--json").output)[0]
    assert (report["expected"], report["present"], report["ok"]) == (2, 1, False)
    statuses = {i["path"]: i["status"] for i in report["items"]}
    assert statuses == {"train.csv": "present", "train_images/": "missing"}


def test_complete_source_is_ready_and_exits_0(tmp_path):
    data = tmp_path / "data"
    (data / "aptos-2019" / "train_images").mkdir(parents=True)
    (data / "aptos-2019" / "train_images" / "000c1434d8d7.png").write_bytes(b"png")
    (data / "aptos-2019" / "train.csv").write_text("id_code,diagnosis\n")
    result = doctor("aptos-2019", "--data-dir", str(data))
    assert result.exit_code == 0, result.output
    assert "1 of 1 source(s) ready" in result.output


def test_subset_and_all_select_sources_and_unknown_names_list_choices(tmp_path):
    registry, _ = validate()
    subset = json.loads(doctor("02", "--data-dir", str(tmp_path), "--json").output)
    assert [r["source"] for r in subset] == list(registry.subsets["02"].sources)
    everything = json.loads(doctor("all", "--data-dir", str(tmp_path), "--json").output)
    assert len(everything) == len(registry.sources) and not any(r["ok"] for r in everything)
    bad = doctor("no-such-source", "--data-dir", str(tmp_path))
    assert bad.exit_code == 2 and "neither a source id" in bad.output


def test_wrong_size_and_hash_of_listed_files_are_reported(tmp_path, mini_copy):
    good = b"path,label\n"
    digest = hashlib.sha256(good).hexdigest()

    def change(d):
        d["access"] = {"kind": "open"}
        d["files"] = [{"name": "labels.csv", "url": "https://example.org/labels.csv", "size": len(good),
                       "sha256": digest, "extract": False},
                      {"name": "images.zip", "url": "https://example.org/images.zip", "sha256": "0" * 64}]
        d["expected_files"] = [{"path": "labels.csv"}, {"path": "images/"}]
    mini_copy.edit(f"sources/{TEMPLATE_SOURCE}.yaml", change)
    registry, problems = validate(mini_copy.root)
    assert not problems
    data = tmp_path / "data"
    root = data / TEMPLATE_SOURCE
    (root / "images").mkdir(parents=True)
    (root / "images" / "1.png").write_bytes(b"x")
    (root / "labels.csv").write_bytes(b"path,label\r\n")  # one byte longer
    assert {i.path: i.status for i in inspect(registry, TEMPLATE_SOURCE, data).items}["labels.csv"] == "wrong size"
    (root / "labels.csv").write_bytes(b"path;label\n")  # same size, other bytes
    report = inspect(registry, TEMPLATE_SOURCE, data)
    items = {i.path: i for i in report.items}
    assert items["labels.csv"].status == "wrong hash" and digest in items["labels.csv"].detail
    assert items[f".downloads/{TEMPLATE_SOURCE}/images.zip"].status == "not downloaded"  # unpacked by hand: fine
    assert not report.ok
    cache = data / ".downloads" / TEMPLATE_SOURCE
    cache.mkdir(parents=True)
    (cache / "images.zip").write_bytes(b"not the archive")
    (root / "labels.csv").write_bytes(good)
    report = inspect(registry, TEMPLATE_SOURCE, data)
    assert [(i.path, i.status) for i in report.problems] == [(f".downloads/{TEMPLATE_SOURCE}/images.zip", "wrong hash")]
    (cache / "images.zip").unlink()
    # The files are right; the tree is no kidney archive (images/1.png is 'x'), which the label walk says.
    assert [i.status for i in inspect(registry, TEMPLATE_SOURCE, data).problems] == ["label file problem"]
    assert inspect(registry, TEMPLATE_SOURCE, data, labels=False).ok
    cli = runner.invoke(app, ["doctor", TEMPLATE_SOURCE, "--data-dir", str(data), "--no-labels",
                              "--manifests", str(mini_copy.root)])
    assert cli.exit_code == 0 and "ready: medmat build" in json.dumps(
        inspect(registry, TEMPLATE_SOURCE, data, labels=False).to_json())


def test_readme_path_for_an_open_source_download_doctor_build_load(tmp_path, full_copy, server):
    """kvasir's (fake) archive served on 127.0.0.1 in place of datasets.simula.no; then the README's commands."""
    staged = fakes.materialise("kvasir", tmp_path / "staging")
    archive = tmp_path / "kvasir-dataset.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(staged.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(staged).as_posix())
    payload = archive.read_bytes()
    server.routes["/downloads/kvasir/kvasir-dataset.zip"] = lambda h: send_bytes(h, payload)
    full_copy.edit("sources/kvasir.yaml", lambda d: d["files"][0].update(
        url=server.url("/downloads/kvasir/kvasir-dataset.zip")))
    data, out, manifests = tmp_path / "data", tmp_path / "out", ["--manifests", str(full_copy.root)]

    first = runner.invoke(app, ["doctor", "kvasir", "--data-dir", str(data), *manifests])
    assert first.exit_code == 1 and "kvasir-dataset/: missing" in first.output
    got = runner.invoke(app, ["download", "kvasir", "--data-dir", str(data), *manifests])
    assert got.exit_code == 0 and "kvasir: ready" in got.output, got.output
    ok = runner.invoke(app, ["doctor", "kvasir", "--data-dir", str(data), *manifests])
    assert ok.exit_code == 0 and "1 of 1 source(s) ready" in ok.output
    built = runner.invoke(app, ["build", "kvasir", "--data-dir", str(data), "--out", str(out), *manifests])
    assert built.exit_code == 0 and "kvasir: 9 written, 0 quarantined" in built.output, built.output

    from datasets import load_dataset

    rows = load_dataset("parquet", data_files=str(out / "sources" / "kvasir" / "*.parquet"),
                        cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert rows.num_rows == 9
    shutil.rmtree(data / ".downloads")  # the archive cache is not needed by the build
