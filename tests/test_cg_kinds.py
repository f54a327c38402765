"""`medmat cg run` for one experiment of every kind, end to end on fake data with the tiny model, and
`medmat cg report` rendering Table 3, Table 10 and Fig. 4 from those results beside the paper's numbers.

The hub folder is written by hand (README configs over Parquet files of seeded synthetic rows), independent of the
hub builder; detection subsets carry boxes. Sample counts are scaled by 0.001 (`--scale`), so a constant 15,000
becomes 15 and the paper's 3,000 cap becomes 3.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medmat.cli import app

pytest.importorskip("torch")
pytest.importorskip("transformers")

from medmat.registry.cg_checks import id_pool  # noqa: E402
from medmat.train.tiny import build_random_model, synthetic_rows  # noqa: E402
from medmat.validation import load_experiments  # noqa: E402

DETSEG = ("38", "39")
# One experiment of every kind (each runs end to end below).
RUNS = ["two-43", "three-03", "scale-28-no-modality", "dl52-modality-related-t500", "clsdet-det-01",
        "pilot-multi-02", "backbone-09", "repeat-09", "fewshot-llava"]


def _rows(n: int, seed: int, sid: str, split: str):
    ds = synthetic_rows(n, seed=seed, subset=sid)

    def fix(row, i):
        out = {"id": f"{sid}-{split}-{i}", "split": split}
        if sid in DETSEG:  # a box per image, asked in the open form
            out.update(task_type="segmentation", boxes=[{"label": "lesion", "x_min": 4.0 + i, "y_min": 6.0,
                                                         "x_max": 20.0, "y_max": 24.0 + i}],
                       question="Locate the lesion in this image.")
        else:
            out["task_type"] = "single-label"
        return out

    return ds.map(fix, with_indices=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    reg, _ = load_experiments()
    folder = tmp_path_factory.mktemp("kinds-hub")
    subsets = sorted(set(id_pool(reg)) | {"05", "19", "26", "27"} | set(DETSEG))
    lines = ["---", "configs:"]
    for k, sid in enumerate(subsets):
        for flavour in ("-paper", ""):
            name = f"subset-{sid}{flavour}"
            lines += [f"- config_name: {name}", "  data_files:"]
            for split, n in (("train", 6), ("test", 4)):
                path = folder / "data" / name / f"{split}.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                _rows(n, 100 * k + (split == "test"), sid, split).to_parquet(str(path))
                lines += [f"  - split: {split}", f"    path: data/{name}/{split}.parquet"]
    (folder / "README.md").write_text("\n".join(lines + ["---", ""]))
    return folder


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-qwen-kinds")
    build_random_model("qwen2_vl", folder, seed=4)
    return folder


@pytest.fixture(scope="module")
def results(hub, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("kinds-runs")
    for exp in RUNS:
        result = CliRunner().invoke(app, [
            "cg", "run", exp, "--model", str(checkpoint), "--data", str(hub), "--out", str(out / exp),
            "--scale", "0.001", "--max-steps", "1", "--batch-size", "2", "--per-device-batch-size", "2",
            "--precision", "fp32", "--num-workers", "0", "--no-gradient-checkpointing", "--box-style", "qwen-vl",
            "--max-test-samples", "2"])
        assert result.exit_code == 0, f"{exp}:\n{result.output}"
    return out


def _load(results, exp):
    return json.loads((results / exp / "results.json").read_text())


def test_every_kind_runs_with_its_arms(results):
    _, cg = load_experiments()
    assert {cg.experiments[e].kind.value for e in RUNS} == {
        "two-source", "three-source", "scaling", "data-limited", "cls-det", "pilot", "backbones", "repeats",
        "few-shot"}
    arms = {e: sorted({(r["arm"], r["run"]) for r in _load(results, e)["runs"]}) for e in RUNS}
    assert arms["two-43"] == [("baseline", 0), ("baseline_plus", 0), ("trained", 0)]
    assert arms["repeat-09"] == [("baseline", 0), ("trained", 0), ("trained", 1), ("trained", 2)]
    assert arms["fewshot-llava"] == [("baseline", 0), ("baseline", 1), ("baseline", 2)]  # untrained: no training


def test_caps_and_volumes_are_the_scaled_paper_ones(results):
    def samples(exp):
        return {r["train_samples"] for r in _load(results, exp)["runs"] if r["arm"] == "trained"}

    assert samples("scale-28-no-modality") == {15}  # 15,000 x 0.001, held constant over 03 + 09 + 21
    assert samples("two-43") == {6}  # 3,000 x 0.001 from each of 21 and 16
    assert samples("dl52-modality-related-t500") == {7}  # the pair's 6 + 500 x 0.001 target samples
    plus = [r["train_samples"] for r in _load(results, "two-43")["runs"] if r["arm"] == "baseline_plus"]
    assert plus == [6]  # Baseline+ as large as the trained arm


def test_repeats_report_mean_and_sd(results):
    data = _load(results, "repeat-09")
    values = [r["value"] for r in data["runs"] if r["arm"] == "trained"]
    trained = next(s for s in data["summary"] if s["arm"] == "trained")
    assert trained["n"] == 3 and trained["mean"] == pytest.approx(sum(values) / 3, abs=0.01)
    assert data["paper"]["runs"] == [43.28, 44.78, 43.28]


def test_few_shot_scores_every_shot_count(results):
    data = _load(results, "fewshot-llava")
    assert sorted({r["shots"] for r in data["runs"]}) == [0, 2, 3, 4]
    assert {s["n"] for s in data["summary"]} == {3}


def test_pilot_multi_task_trains_once_and_scores_every_target_present(results):
    reg, _ = load_experiments()
    data = _load(results, "pilot-multi-02")
    targets = {r["target"] for r in data["runs"] if r["arm"] == "trained"}
    assert targets == set(id_pool(reg)) | {"05", "27"}  # 25 ID + the OOD subsets this hub holds
    assert len({r["train_samples"] for r in data["runs"] if r["arm"] == "trained"}) == 1


def test_detection_target_is_scored_by_ciou(results):
    data = _load(results, "clsdet-det-01")
    assert {r["metric"] for r in data["runs"]} == {"ciou"} and data["box_style"] == "qwen-vl"


def test_report_renders_table3_table10_fig4_beside_the_paper(results, tmp_path):
    tables = [arg for t in ("table3", "table10", "fig4", "repeats", "curves") for arg in ("--table", t)]
    result = CliRunner().invoke(app, ["cg", "report", str(results), "--out", str(tmp_path), *tables])
    assert result.exit_code == 0, result.output
    t3 = (tmp_path / "table3.md").read_text().splitlines()
    numbered = [line for line in t3 if re.match(r"\| \d+ \|", line)]
    assert len(numbered) == 43 and sum("**" in line for line in t3) == 4  # 43 rows in the paper's 4 segments
    row43 = next(line for line in numbered if line.startswith("| 43 |"))
    assert re.search(r"\| 23 / [\d.]+ \| 24 / [\d.]+ \| 27 / [\d.]+ \| ✓ / [✓✗] \|$", row43), row43
    t10 = [line for line in (tmp_path / "table10.md").read_text().splitlines() if line.startswith("| Subset")]
    assert len(t10) == 9 and t10[2].startswith("| Subset02 | Subset22 | Subset09 |")
    assert re.search(r"\| 33 / [\d.]+ \| 64 / [\d.]+ \|", t10[2])
    f4 = [line for line in (tmp_path / "fig4.md").read_text().splitlines() if line.startswith("| Subset")]
    assert [line.count("|") for line in f4] == [9, 9]  # target + Baseline + six settings
    assert re.search(r"\| 38 / [\d.]+ \|", f4[1]) and "| 76 / – |" in f4[0]
    assert "37.31 → 43.78 ± 0.87 (runs 43.28 / 44.78 / 43.28)" in (tmp_path / "repeats.md").read_text()
    fig6 = (tmp_path / "curves.md").read_text()
    assert re.search(r"^\| Fix Modality \(two-04\) \| Related \| – \| [\d.]+ \| – \| – \| – \|$", fig6, re.M), fig6
    for name in ("table3", "table10", "fig4", "curves"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_refuses_a_volume_the_data_cannot_hold(hub, checkpoint, tmp_path):
    # Unscaled, the constant 15,000 is far beyond 3 x 6 fake rows: refused with the fix, before any training.
    result = CliRunner().invoke(app, [
        "cg", "run", "scale-28-no-modality", "--model", str(checkpoint), "--data", str(hub), "--out", str(tmp_path),
        "--max-steps", "1", "--batch-size", "2", "--per-device-batch-size", "2", "--precision", "fp32",
        "--num-workers", "0", "--no-gradient-checkpointing", "--scale", "1"])
    assert result.exit_code == 1 and "holds its volume at 15000" in result.output


def test_same_inputs_and_seed_give_byte_identical_results(results, hub, checkpoint, tmp_path):
    result = CliRunner().invoke(app, [
        "cg", "run", "three-03", "--model", str(checkpoint), "--data", str(hub), "--out", str(tmp_path / "again"),
        "--scale", "0.001", "--max-steps", "1", "--batch-size", "2", "--per-device-batch-size", "2",
        "--precision", "fp32", "--num-workers", "0", "--no-gradient-checkpointing", "--box-style", "qwen-vl",
        "--max-test-samples", "2"])
    assert result.exit_code == 0, result.output
    for name in ("results.json", "results.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (results / "three-03" / name).read_bytes()
