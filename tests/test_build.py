"""Building a source: bad input is quarantined with its reason and counted; output is deterministic."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from typer.testing import CliRunner

from medmat.prepare.source import BuildOptions, build_source
from medmat.prepare.writer import BuildError
from medmat.cli import app
from medmat.validation import validate
from tests.conftest import TEMPLATE_SOURCE

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
NIBABEL_FILES = Path(nib.__file__).parent / "tests" / "data"
INNER = "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone"
QUIET = BuildOptions(progress=False)


def _noise(path: Path, seed: int, size=(20, 20)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, size, dtype=np.uint8)).save(path)


def _good_tree(data: Path, per_label: int = 2) -> Path:
    root = data / TEMPLATE_SOURCE / INNER
    seed = 0
    for label in ("Cyst", "Normal", "Stone", "Tumor"):
        for i in range(1, per_label + 1):
            seed += 1
            _noise(root / label / f"{label}- ({i}).png", seed)
    return root


@pytest.fixture
def kidney(mini_copy):
    """The mini registry with the kidney source also accepting DICOM and NIfTI files (to plant bad ones)."""
    mini_copy.edit(f"sources/{TEMPLATE_SOURCE}.yaml",
                   lambda d: d["layout"]["params"].update(extensions=["jpg", "png", "dcm", "nii"]))
    registry, problems = validate(mini_copy.root)
    assert problems == []
    return registry


def _build(registry, data, out, **options):
    return build_source(registry, TEMPLATE_SOURCE, data, out, BuildOptions(progress=False, **options))


def _bomb_png() -> bytes:
    """A valid PNG header claiming 100,000 x 100,000 pixels, with almost no data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BAD_FILES = {
    "zero-byte": ("Cyst/zero.png", lambda p: p.write_bytes(b""), "empty file"),
    "truncated": ("Cyst/cut.png", lambda p: p.write_bytes((p.parent / "Cyst- (1).png").read_bytes()[:60]),
                  "corrupt image"),
    "text-named-png": ("Normal/login.png", lambda p: p.write_text("<html>Please sign in</html>"), "not an image"),
    "dicom-without-pixels": ("Stone/nopix.dcm", lambda p: _dicom_without_pixels(p), "DICOM without pixel data"),
    "broken-nifti": ("Tumor/broken.nii", lambda p: _broken_nifti(p), "corrupt volume"),
    "bomb": ("Tumor/huge.png", lambda p: p.write_bytes(_bomb_png()), "too large"),
    "unknown-label": ("Abscess/a.png", lambda p: _noise(p, 999), "unknown label 'Abscess'"),
    "duplicate": ("Normal/copy.png", lambda p: shutil.copy(p.parent.parent / "Cyst" / "Cyst- (1).png", p),
                  "duplicate pixels of"),
}


def _dicom_without_pixels(path: Path) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    del ds.PixelData
    ds.save_as(path)


def _broken_nifti(path: Path) -> None:
    raw = bytearray((NIBABEL_FILES / "anatomical.nii").read_bytes())
    raw[0:4] = (12345).to_bytes(4, "little")
    raw[344:348] = b"xxxx"
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_is_quarantined_and_counted(kidney, tmp_path, case):
    root = _good_tree(tmp_path / "data")
    rel, plant, reason = BAD_FILES[case]
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    plant(root / rel)
    report = _build(kidney, tmp_path / "data", tmp_path / "out")
    assert report["written"] == 8
    assert report["quarantined"] == 1
    assert report["seen"] == 9 == report["written"] + report["quarantined"] + report["excluded"]
    (entry,) = report["quarantined_files"]
    assert entry["path"].endswith(rel.split("/")[-1]) and reason in entry["reason"]


def test_everything_bad_at_once_still_builds(kidney, tmp_path):
    root = _good_tree(tmp_path / "data")
    for rel, plant, _ in BAD_FILES.values():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        plant(root / rel)
    (root / "notes.txt").write_text("not an image")
    report = _build(kidney, tmp_path / "data", tmp_path / "out")
    assert (report["written"], report["quarantined"], report["excluded"]) == (8, len(BAD_FILES), 1)
    assert report["reconciled"]
    assert report["excluded_files"][0]["reason"].startswith("not an image extension")


def test_strict_stops_and_leaves_no_output(kidney, tmp_path):
    root = _good_tree(tmp_path / "data")
    (root / "Cyst" / "zero.png").write_bytes(b"")
    with pytest.raises(BuildError, match="zero.png"):
        _build(kidney, tmp_path / "data", tmp_path / "out", strict=True)
    sources = tmp_path / "out" / "sources"
    assert not (sources / TEMPLATE_SOURCE).exists()
    assert not any(p.name.endswith(".partial") for p in sources.iterdir())


def test_max_examples_excludes_the_rest_by_rule(kidney, tmp_path):
    _good_tree(tmp_path / "data")
    report = _build(kidney, tmp_path / "data", tmp_path / "out", max_examples=3)
    assert report["written"] == 3 and report["excluded"] == 5
    assert set(report["exclusion_rules"]) == {"beyond --max-examples 3"}


def _label_table(mini_copy):
    def change(d):
        d["layout"]["root"] = ""
        d["layout"]["family"] = "label-table"
        d["layout"]["params"] = {"table": "kidneyData.csv", "path_column": "path", "label_column": "Class",
                                 "path_template": "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/{}",
                                 "extensions": ["png"]}
    mini_copy.edit(f"sources/{TEMPLATE_SOURCE}.yaml", change)
    registry, problems = validate(mini_copy.root)
    assert problems == []
    return registry


def test_label_rows_and_files_that_do_not_match(mini_copy, tmp_path):
    registry = _label_table(mini_copy)
    root = _good_tree(tmp_path / "data", per_label=1)
    _noise(root / "Tumor" / "unlisted.png", 77)
    rows = [f"{i},{label}- (1),CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/{label}/{label}- (1).png,{label},{i},{label}"
            for i, label in enumerate(("Cyst", "Normal", "Stone", "Tumor"))]
    rows.append("4,Cyst- (9),CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/Cyst/Cyst- (9).png,Cyst,0,Cyst")
    (tmp_path / "data" / TEMPLATE_SOURCE / "kidneyData.csv").write_text(
        ",image_id,path,diag,target,Class\n" + "\n".join(rows) + "\n")
    report = _build(registry, tmp_path / "data", tmp_path / "out")
    reasons = {q["path"].split("/")[-1]: q["reason"] for q in report["quarantined_files"]}
    assert report["written"] == 4
    assert "names a file that is missing" in reasons["Cyst- (9).png"]
    assert "has no row in kidneyData.csv" in reasons["unlisted.png"]
    assert report["excluded"] == 1  # the CSV itself: seen, not an image
    assert report["seen"] == 4 + 2 + 1


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_one_and_two_workers_give_identical_bytes(kidney, tmp_path):
    root = _good_tree(tmp_path / "data", per_label=20)
    (root / "Cyst" / "zero.png").write_bytes(b"")
    one = _build(kidney, tmp_path / "data", tmp_path / "one", num_proc=1)
    two = _build(kidney, tmp_path / "data", tmp_path / "two", num_proc=2)
    assert one == two
    a = _digests(tmp_path / "one" / "sources" / TEMPLATE_SOURCE)
    b = _digests(tmp_path / "two" / "sources" / TEMPLATE_SOURCE)
    assert a == b and "part-00000.parquet" in a


def test_rebuild_replaces_previous_output(kidney, tmp_path):
    _good_tree(tmp_path / "data")
    first = _build(kidney, tmp_path / "data", tmp_path / "out")
    second = _build(kidney, tmp_path / "data", tmp_path / "out")
    assert first == second


def test_cli_build(kidney, tmp_path, mini_copy):
    _good_tree(tmp_path / "data")
    result = CliRunner().invoke(app, ["build", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "data"), "--out",
                                      str(tmp_path / "out"), "--manifests", str(mini_copy.root), "--num-proc", "2"])
    assert result.exit_code == 0, result.output
    assert "8 written, 0 quarantined, 0 excluded of 8 seen" in result.output


def _pngs(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "hub").rglob("*.png"))


def test_local_build_draws_no_figures_unless_asked(kidney, tmp_path, mini_copy):
    from medmat.hub.card import FIGURES_HINT

    _good_tree(tmp_path / "data")
    args = ["build", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
            "--manifests", str(mini_copy.root)]
    # A fresh process, so that nothing imported by an earlier test hides a matplotlib import.
    code = (f"import sys; from medmat.cli import app; app({args!r}, standalone_mode=False); "
            "print('matplotlib imported:', 'matplotlib' in sys.modules)")
    root = str(Path(__file__).resolve().parents[1])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                         env=dict(os.environ, PYTHONPATH=root))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "matplotlib imported: False" in run.stdout
    card = (tmp_path / "out" / "hub" / "README.md").read_text()
    assert _pngs(tmp_path / "out") == [] and "## MAT coverage" in card and FIGURES_HINT in card
    assert "](assets/" not in card and "## Samples" not in card

    figures = CliRunner().invoke(app, [*args, "--hub-only", "--figures"])
    assert figures.exit_code == 0, figures.output
    assert _pngs(tmp_path / "out") == ["mat-coverage.png", "montage-subset-02.png"]  # a local build keeps pixels
    card = (tmp_path / "out" / "hub" / "README.md").read_text()
    assert "![MAT coverage](assets/mat-coverage.png)" in card and FIGURES_HINT not in card
    again = CliRunner().invoke(app, [*args, "--hub-only"])  # the hub folder is replaced whole: no stale figures
    assert again.exit_code == 0, again.output
    assert _pngs(tmp_path / "out") == []


def test_publishable_build_draws_figures_unless_told_not_to(kidney, tmp_path, mini_copy):
    from medmat.hub.card import FIGURES_HINT
    from medmat.hub.publish import restricted_pixels

    _good_tree(tmp_path / "data")
    args = ["build", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"),
            "--manifests", str(mini_copy.root), "--publishable", "--repo", "medmat-test/Med-MAT"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert _pngs(tmp_path / "out") == ["mat-coverage.png"]  # no montage: the kidney source may not be republished
    card = (tmp_path / "out" / "hub" / "README.md").read_text()
    assert "![MAT coverage](assets/mat-coverage.png)" in card and "(no redistributable pixels" in card
    assert restricted_pixels(tmp_path / "out" / "hub", kidney) == {}
    result = CliRunner().invoke(app, [*args, "--hub-only", "--no-figures"])
    assert result.exit_code == 0, result.output
    assert _pngs(tmp_path / "out") == [] and FIGURES_HINT in (tmp_path / "out" / "hub" / "README.md").read_text()
    assert restricted_pixels(tmp_path / "out" / "hub", kidney) == {}  # nothing to check: it passes


def test_cli_build_missing_folder_says_where(kidney, tmp_path, mini_copy):
    result = CliRunner().invoke(app, ["build", TEMPLATE_SOURCE, "--data-dir", str(tmp_path / "nothing"), "--out",
                                      str(tmp_path / "out"), "--manifests", str(mini_copy.root)])
    assert result.exit_code == 1
    assert "is missing" in result.output and "kidneyData.csv" in result.output


def test_cli_unknown_source(tmp_path, mini_copy):
    result = CliRunner().invoke(app, ["build", "no-such", "--data-dir", str(tmp_path), "--out", str(tmp_path),
                                      "--manifests", str(mini_copy.root)])
    assert result.exit_code == 2 and "unknown source id" in result.output
