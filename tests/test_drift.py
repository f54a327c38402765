"""Issue 15: `medmat doctor` finds a tree that is not where the manifest says, prints the exact fix, and checks
label files and values before a build.

Each case materialises a real fake archive (tests/fakes.py), rearranges it on disk the way real downloads differ
(an extra top folder, a doubled tree, a case change, a missing level, a renamed top folder, a case change inside
the root), runs `medmat doctor` through the CLI, then applies the printed fix (the `--layout-root` value, or the
printed shell command) and checks that doctor is satisfied and that the build writes the counts the fake states
in its own `expect:` block.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmat.cli import app

from . import fakes

runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "400"})


def _doctor(data: Path, sid: str, *extra: str) -> tuple[int, dict, str]:
    as_json = _cli("doctor", sid, "--data-dir", str(data), "--json", *extra)
    text = _cli("doctor", sid, "--data-dir", str(data), *extra)
    return as_json.exit_code, json.loads(as_json.output)[0], text.output


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))


def _extra_top_folder(root: Path) -> None:
    inner = root / "aptos2019-blindness-detection"
    inner.mkdir()
    for entry in sorted(root.iterdir()):
        if entry != inner:
            _move(entry, inner / entry.name)


def _doubled_tree(root: Path) -> None:
    top = root / "TB_Chest_Radiography_Database"
    _move(top, root / "tmp" / top.name)
    _move(root / "tmp", top)


def _case_change(root: Path) -> None:
    _move(root / "Dataset_BUSI_with_GT", root / "dataset_busi_with_gt")


def _missing_level(root: Path) -> None:
    outer = root / "RetinalOCT_Dataset"
    for entry in sorted((outer / "RetinalOCT_Dataset").iterdir()):
        _move(entry, outer / entry.name)
    (outer / "RetinalOCT_Dataset").rmdir()


def _renamed_top_folder(root: Path) -> None:
    _move(root / "COVID-19_Radiography_Dataset", root / "COVID-19 Radiography Database")


def _extra_folder_and_case(root: Path) -> None:
    """Two changes at once, neither of which finds anything alone: an extra folder, and the case inside it."""
    _move(root / "Dataset_BUSI_with_GT", root / "download" / "dataset_busi_with_gt")


def _root_below_expected_renamed(root: Path) -> None:
    """acrima's expected_files name only Database/; its layout.root Database/Images is what moved."""
    _move(root / "Database" / "Images", root / "Database" / "images")


# (source, rearrangement, kind doctor must name, the --layout-root that fixes it)
CASES = [
    ("aptos-2019", _extra_top_folder, "extra folder", "aptos2019-blindness-detection"),
    ("tuberculosis-cxr-database", _doubled_tree, "doubled folder",
     "TB_Chest_Radiography_Database/TB_Chest_Radiography_Database"),
    ("busi", _case_change, "case differs", "dataset_busi_with_gt"),
    ("retinal-oct-c8", _missing_level, "single folder", "RetinalOCT_Dataset"),
    ("covid-19-radiography-database", _renamed_top_folder, "renamed folder", "COVID-19 Radiography Database"),
    ("acrima", _root_below_expected_renamed, "case differs", "Database/images"),
    ("busi", _extra_folder_and_case, "extra folder", "download/dataset_busi_with_gt"),
]


@pytest.mark.parametrize("sid, rearrange, kind, root", CASES, ids=[f"{c[2]}-{c[0]}" for c in CASES])
def test_doctor_finds_the_tree_and_its_fix_builds(tmp_path, sid, rearrange, kind, root):
    data = tmp_path / "data"
    fakes.materialise(sid, data)
    rearrange(data / sid)

    code, report, text = _doctor(data, sid)
    assert code == 1 and not report["ok"]
    assert report["layout_root"] == root
    assert report["drift"][0].startswith(f"layout drift: {kind}:")
    assert f"--layout-root {root!r}" in text or f"--layout-root {root}" in text  # shell-quoted when it has spaces
    assert f"layout.root: " in text and "manifests/sources/" in text

    code, report, text = _doctor(data, sid, "--layout-root", root)
    assert code == 0, text
    (labels,) = [i for i in report["items"] if i["what"] == "labels"]
    assert labels["status"] == "labels known"

    out = tmp_path / "out"
    result = _cli("build", sid, "--data-dir", str(data), "--out", str(out), "--no-hub", "--layout-root", root)
    assert result.exit_code == 0, result.output
    built = json.loads((out / "sources" / sid / "report.json").read_text())
    expect = fakes.load_spec(sid)["expect"]
    assert (built["written"], built["quarantined"], built["excluded"]) == (
        expect["written"], expect.get("quarantined", 0), expect.get("excluded", 0))
    assert built["reconciled"]


def test_a_tree_stored_twice_is_reported(tmp_path):
    """Some Kaggle mirrors hold the tree and a copy of it inside itself (x/ and x/x/): the build would read both."""
    sid = "tuberculosis-cxr-database"
    data = tmp_path / "data"
    fakes.materialise(sid, data)
    top = data / sid / "TB_Chest_Radiography_Database"
    assert _doctor(data, sid)[0] == 0
    shutil.copytree(top, tmp_path / "copy")
    shutil.copytree(tmp_path / "copy", top / "TB_Chest_Radiography_Database")
    code, report, text = _doctor(data, sid)
    assert code == 1
    (item,) = [i for i in report["items"] if i["status"] == "tree stored twice"]
    assert item["path"] == "TB_Chest_Radiography_Database/TB_Chest_Radiography_Database"
    assert "(Normal, Tuberculosis)" in item["detail"] and "tree stored twice" in text


def test_drift_inside_the_root_is_fixed_by_the_printed_command(tmp_path):
    """brain-tumor-mri-4-classes reads Training/ and Testing/ straight from the source folder: a case change there
    is below any layout.root, so the fix is the printed `mv`, which is run here as printed."""
    sid = "brain-tumor-mri-4-classes"
    data = tmp_path / "data"
    fakes.materialise(sid, data)
    _move(data / sid / "Training", data / sid / "training")

    code, report, text = _doctor(data, sid)
    assert code == 1 and report["layout_root"] is None
    assert report["drift"][0] == ("layout drift: case differs: the manifest expects 'Training', the files are "
                                  "under 'training'")
    (command,) = [line.split(": ", 1)[1] for line in report["drift"] if line.startswith("or move the files")]
    subprocess.run(["bash", "-c", command], check=True)
    code, report, text = _doctor(data, sid)
    assert code == 0, text


def test_doctor_checks_label_columns_before_a_build(tmp_path):
    data = tmp_path / "data"
    fakes.materialise("aptos-2019", data)
    table = data / "aptos-2019" / "train.csv"
    table.write_text(table.read_text().replace("id_code,diagnosis", "id_code,level", 1))
    code, report, text = _doctor(data, "aptos-2019")
    assert code == 1
    (labels,) = [i for i in report["items"] if i["what"] == "labels"]
    assert labels["status"] == "label file problem" and "lacks columns ['diagnosis']" in labels["detail"]


def test_doctor_lists_label_values_the_manifest_does_not(tmp_path):
    data = tmp_path / "data"
    fakes.materialise("aptos-2019", data)
    table = data / "aptos-2019" / "train.csv"
    lines = table.read_text().splitlines()
    first_id = lines[1].split(",")[0]
    lines[1] = f"{first_id},7"  # APTOS grades are 0-4
    table.write_text("\n".join(lines) + "\n")
    code, report, text = _doctor(data, "aptos-2019")
    assert code == 1
    (labels,) = [i for i in report["items"] if i["what"] == "labels"]
    assert labels["status"] == "unknown labels"
    assert f"'7' x1 (e.g. train_images/{first_id}.png)" in labels["detail"]
    assert "'7' x1" in text
    # --no-labels skips the walk
    code, report, _ = _doctor(data, "aptos-2019", "--no-labels")
    assert code == 0 and not [i for i in report["items"] if i["what"] == "labels"]


def test_layout_root_values_are_checked(tmp_path):
    for args, words in ((["aptos-2019", "airogs", "--layout-root", "x"], "name the source"),
                        (["aptos-2019", "--layout-root", "airogs=x"], "not among the selected"),
                        (["aptos-2019", "--layout-root", "../x"], "stay inside")):
        result = _cli("doctor", *args, "--data-dir", str(tmp_path))
        assert result.exit_code == 2 and words in result.output


def test_doctor_checks_the_columns_layout_label_files_lists(tmp_path):
    """aptos-2019's manifest lists test.csv with column id_code (the build never reads it): a header spelled
    otherwise is still reported, from the manifest's own `layout.label_files`."""
    data = tmp_path / "data"
    fakes.materialise("aptos-2019", data)
    code, report, _ = _doctor(data, "aptos-2019")
    assert code == 0
    statuses = {i["path"]: i["status"] for i in report["items"] if i["what"] == "label-file"}
    assert statuses == {"train.csv": "columns as listed", "test.csv": "columns as listed"}
    table = data / "aptos-2019" / "test.csv"
    table.write_text(table.read_text().replace("id_code", "id", 1))
    code, report, _ = _doctor(data, "aptos-2019")
    assert code == 1
    (item,) = [i for i in report["items"] if i["what"] == "label-file" and i["problem"]]
    assert item["path"] == "test.csv" and "lacks ['id_code']" in item["detail"] and "['id']" in item["detail"]
