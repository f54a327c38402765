"""medmat.train on CPU with tiny random Qwen2-VL and LLaVA models and a locally built tokenizer (no downloads)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from typer.testing import CliRunner  # noqa: E402

from medmat.cli import app  # noqa: E402
from medmat.train.collate import IGNORE, collator_for  # noqa: E402
from medmat.train.config import PRESETS, DataSpec, TrainConfig  # noqa: E402
from medmat.train.data import DataError, add_lengths, load_split, mix, prepare  # noqa: E402
from medmat.train.evaluate import evaluate, score  # noqa: E402
from medmat.train.experiments import ExperimentError, equal_shares, plan_experiment  # noqa: E402
from medmat.train.tiny import build_random_model, synthetic_rows  # noqa: E402
from medmat.train.trainer import answer_columns, answer_loss, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Tiny models gain nothing from intra-op threads, and on a shared 2-core runner threads contend (3x slower).
torch.set_num_threads(1)
OPTIONS = ["Stone", "Cyst", "Normal", "Tumor"]
FAMILIES = ["qwen2_vl", "llava"]


def _cfg(tmp_path, **overrides) -> TrainConfig:
    settings = dict(model="tiny", output_dir=tmp_path / "run", max_steps=40, learning_rate=3e-3, batch_size=8,
                    per_device_batch_size=8, precision="fp32", gradient_checkpointing=False, num_workers=0,
                    save=False, warmup_ratio=0.0, lr_scheduler="constant", logging_steps=10)
    settings.update(overrides)
    return TrainConfig(**settings)


# --- scoring (pure Python; the extraction table is in test_train_extract.py) ---------------------------------

def test_score_counts_per_subset_and_label():
    rows = [
        {"id": "a", "subset": "02", "labels": ["Cyst"], "options": OPTIONS, "answer_choice": "B"},
        {"id": "b", "subset": "02", "labels": ["Stone"], "options": OPTIONS, "answer_choice": "A"},
        {"id": "c", "subset": "03", "labels": [], "options": OPTIONS, "answer_choice": "C"},
    ]
    result = score(rows, ["(B)", "Cyst", "nonsense"])
    assert result["overall"] == {"correct": 1, "total": 3, "accuracy": 33.33}
    assert result["per_subset"]["02"] == {"correct": 1, "total": 2, "accuracy": 50.0}
    assert result["per_subset"]["03"] == {"correct": 0, "total": 1, "accuracy": 0.0}
    assert result["per_label"]["02/Cyst"]["correct"] == 1 and result["per_label"]["02/Stone"]["correct"] == 0
    assert result["per_label"]["03/(no finding)"]["total"] == 1
    assert result["unparsed"] == 1
    assert [s["extracted"] for s in result["samples"]] == ["B", "B", None]


# --- data ----------------------------------------------------------------------------------------------------------

def test_prepare_refuses_rows_without_qa_and_mixes_foreign_datasets():
    import datasets
    from PIL import Image

    rows = synthetic_rows(4)
    broken = rows.map(lambda r, i: {"question_choice": None if i == 1 else r["question_choice"]}, with_indices=True)
    with pytest.raises(DataError, match="1 value"):
        prepare(broken, "choice", "broken")
    # A general four-option dataset (like ImageWikiQA) with only the QA columns and images.
    extra = datasets.Dataset.from_dict({
        "image": [Image.new("RGB", (20, 30), "white")] * 2,
        "question_choice": ["What colour?\nA: white\nB: black\nAnswer with the option's letter.", "Q?\nA: x\nB: y"],
        "answer_choice": ["A", "B"]})
    extra = prepare(extra, "choice", "wiki")
    assert extra[0]["subset"] == "wiki" and extra[0]["labels"] == []
    mixed = mix(prepare(rows, "choice", "train"), [extra], seed=1)
    assert len(mixed) == 6 and sorted(set(mixed["subset"])) == ["02", "wiki"]
    assert mixed["id"] == mix(prepare(rows, "choice", "train"), [extra], seed=1)["id"]  # seeded order


def test_load_split_reads_parquet_and_saved_datasets(tmp_path):
    rows = synthetic_rows(5)
    rows.to_parquet(str(tmp_path / "part.parquet"))
    rows.save_to_disk(str(tmp_path / "saved"))
    from_parquet = load_split(DataSpec(path=str(tmp_path / "part.parquet"), max_samples=3))
    assert len(from_parquet) == 3 and from_parquet[0]["image"].size == (32, 32)
    assert len(load_split(DataSpec(path=str(tmp_path / "saved")))) == 5
    with pytest.raises(DataError, match="config"):
        load_split(DataSpec(path=str(tmp_path / "nothing-here"), config="subset-02"))


# --- collation, masking, loss --------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    return request.param, build_random_model(request.param)


def test_labels_cover_only_the_answer_and_the_loss_ignores_prompt_tokens(tiny):
    family, (model, processor) = tiny
    rows = synthetic_rows(3)
    batch = collator_for(model, processor, "choice", train=True)([rows[i] for i in range(3)])
    tokenizer = processor.tokenizer
    end = "<|im_end|>" if family == "qwen2_vl" else "</s>"
    for i in range(3):
        kept = batch["labels"][i][batch["labels"][i] != IGNORE]
        assert tokenizer.decode(kept).strip().startswith(rows[i]["answer_choice"] + end)
        # Every prompt token (image tokens included) is masked: the answer sits at the end of the real tokens.
        real = int(batch["attention_mask"][i].sum())
        assert (batch["labels"][i][: real - len(kept)] == IGNORE).all()
        assert (batch["labels"][i][real:] == IGNORE).all()
    if family == "qwen2_vl":
        assert "mm_token_type_ids" in batch and int(batch["mm_token_type_ids"].eq(1).sum()) > 0

    model.train()
    out = model(**batch)
    logits = out.logits
    logits.retain_grad()
    out.loss.backward()
    model.zero_grad()
    predicts_answer = torch.zeros_like(batch["labels"], dtype=torch.bool)
    predicts_answer[:, :-1] = batch["labels"][:, 1:] != IGNORE
    grad = logits.grad.abs().sum(-1)
    assert grad[~predicts_answer].max().item() == 0.0  # prompt positions get no gradient at all
    assert (grad[predicts_answer] > 0).all()
    # The answer-only loss (lm_head only where answers are predicted) equals the model's own loss.
    columns = answer_columns(batch["labels"])
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        fast = answer_loss(model(**inputs, logits_to_keep=columns).logits, batch["labels"], columns)
        full = model(**batch).loss
    assert len(columns) < batch["labels"].shape[1] / 4
    assert fast.item() == pytest.approx(full.item(), rel=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_overfits_a_handful_of_samples_to_full_option_accuracy(family, tmp_path):
    rows = synthetic_rows(8)
    model, processor = build_random_model(family, seed=1)
    assert evaluate(model, processor, rows)["overall"]["accuracy"] < 100
    model, processor, summary = train(_cfg(tmp_path, max_steps=60), rows, model=model, processor=processor)
    assert summary["steps"] == 60 and summary["losses"][-1] < summary["losses"][0] / 10
    result = evaluate(model, processor, rows)
    assert result["overall"] == {"correct": 8, "total": 8, "accuracy": 100.0}
    assert result["unparsed"] == 0
    by_logits = evaluate(model, processor, rows, scoring="logits")  # one forward pass, no generation
    assert by_logits["overall"] == result["overall"]
    assert [s["extracted"] for s in by_logits["samples"]] == [s["extracted"] for s in result["samples"]]


def test_lora_trains_only_adapters_with_checkpointing_and_length_grouping(tmp_path):
    rows = synthetic_rows(8)
    model, processor = build_random_model("qwen2_vl", seed=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = _cfg(tmp_path, method="lora", lora_r=4, max_steps=4, batch_size=4, per_device_batch_size=2,
               gradient_checkpointing=True, group_by_length=True, save=True)
    trained, _, summary = train(cfg, rows, model=model, processor=processor)
    assert summary["steps"] == 4 and summary["samples"] == 8
    names = [n for n, p in trained.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert any("language_model" in n for n in names) and not any("visual" in n for n in names)
    base = trained.get_base_model()
    assert all(torch.equal(p, before[n]) for n, p in base.named_parameters() if "lora_" not in n and n in before)
    assert (tmp_path / "run" / "final" / "adapter_config.json").exists()
    assert (tmp_path / "run" / "final" / "train_summary.json").exists()


def test_lengths_count_image_and_text_tokens():
    rows = prepare(synthetic_rows(4), "choice", "t")
    _, processor = build_random_model("qwen2_vl")
    lengths = add_lengths(rows, processor, "choice")["length"]
    text = len(processor.tokenizer(rows[0]["question_choice"] + " " + rows[0]["answer_choice"])["input_ids"])
    assert lengths[0] == text + 4  # a 32 px image becomes 56 x 56: 4 x 4 patches, merged 2 x 2 -> 4 tokens


def test_image_budget_caps_qwen2_vl_tokens_and_freeze_vision_keeps_the_projector():
    from PIL import Image

    from medmat.train.model import apply_image_budget, freeze_vision

    model, processor = build_random_model("qwen2_vl")
    # Qwen/Qwen2-VL-7B-Instruct's preprocessor_config.json: min_pixels 3136, max_pixels 12845056.
    processor.image_processor.size = {"shortest_edge": 3136, "longest_edge": 12845056}
    count = processor._get_num_multimodal_tokens  # transformers' own token arithmetic (smart_resize)
    assert count(image_sizes=[(2660, 2576)]).num_image_tokens == [8740]  # a fundus photo, uncapped
    assert apply_image_budget(processor) == (3136, 602112)
    assert count(image_sizes=[(2660, 2576)]).num_image_tokens[0] <= 768
    prompt = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}],
                                           add_generation_prompt=True, tokenize=False)
    ids = processor(text=[prompt], images=[Image.new("RGB", (2576, 2660))], return_tensors="pt")["input_ids"]
    assert int((ids == model.config.image_token_id).sum()) == count(image_sizes=[(2660, 2576)]).num_image_tokens[0]
    assert apply_image_budget(build_random_model("llava")[1]) is None  # fixed-size processors need no budget
    assert freeze_vision(model) > 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".merger." in n for n in trainable)  # Qwen2-VL's projector lives under visual. and stays trainable
    assert not any("visual." in n and ".merger." not in n for n in trainable)


def test_training_is_deterministic(tmp_path):
    rows = synthetic_rows(4)
    weights = []
    for run in range(2):
        model, processor = build_random_model("llava", seed=3)
        model, _, _ = train(_cfg(tmp_path / str(run), max_steps=3, batch_size=2, per_device_batch_size=2), rows,
                            model=model, processor=processor)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_checkpoints_and_resume(tmp_path):
    rows = synthetic_rows(4)
    model, processor = build_random_model("llava", seed=3)
    cfg = _cfg(tmp_path, max_steps=2, batch_size=2, per_device_batch_size=2, save_steps=1, save_total_limit=1)
    train(cfg, rows, model=model, processor=processor)
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2"]  # limit 1 kept
    model, processor = build_random_model("llava", seed=3)
    _, _, summary = train(cfg.model_copy(update={"max_steps": 3, "resume": True}), rows, model=model,
                          processor=processor)
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 3


def test_presets_follow_the_paper():
    assert PRESETS["llava-1.5"] == {"epochs": 5, "learning_rate": 5e-6, "batch_size": 32, "method": "full"}
    assert PRESETS["qwen2-vl"]["learning_rate"] == 2e-6
    with pytest.raises(ValueError, match="multiple"):
        TrainConfig(model="m", output_dir=Path("x"), batch_size=32, per_device_batch_size=5)


# --- CLI: train, eval, cg run -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-qwen")
    build_random_model("qwen2_vl", folder, seed=4)
    return folder


def _hand_made_hub(folder: Path) -> Path:
    """A hub folder written by hand: README configs over Parquet files (independent of the hub builder)."""
    configs = {"cg-demo": {"train": synthetic_rows(6, subset="21"), "test": synthetic_rows(4, seed=9, subset="19")},
               "subset-13": {"train": synthetic_rows(5, seed=5, subset="13")},
               "subset-23": {"train": synthetic_rows(5, seed=6, subset="23")}}
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        for split, ds in splits.items():
            (folder / "data" / name).mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(folder / "data" / name / f"{split}.parquet"))
            lines += [f"  - split: {split}", f"    path: data/{name}/{split}.parquet"]
    (folder / "README.md").write_text("\n".join(lines + ["---", ""]))
    return folder


def test_train_and_eval_commands(tiny_checkpoint, tmp_path):
    hub = _hand_made_hub(tmp_path / "hub")
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--model", str(tiny_checkpoint), "--data", str(hub), "--config", "cg-demo",
                                 "--out", str(tmp_path / "run"), "--max-steps", "2", "--batch-size", "2",
                                 "--per-device-batch-size", "2", "--precision", "fp32", "--num-workers", "0",
                                 "--no-gradient-checkpointing", "--mix", str(hub), "--mix-config", "subset-13",
                                 "--mix-samples", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "final" / "train_summary.json").read_text())
    assert summary["samples"] == 8 and summary["steps"] == 2  # 6 rows + 2 mixed in
    result = runner.invoke(app, ["eval", "--model", str(tmp_path / "run" / "final"), "--data", str(hub),
                                 "--config", "cg-demo", "--out", str(tmp_path / "eval"), "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert evaluated["overall"]["total"] == 4 and evaluated["per_subset"]["19"]["total"] == 4
    with open(tmp_path / "eval" / "per_label.csv") as handle:
        assert sum(int(r["total"]) for r in csv.DictReader(handle)) == 4


def test_cg_run_with_explicit_configs_writes_table_and_chart(tiny_checkpoint, tmp_path):
    hub = _hand_made_hub(tmp_path / "hub")
    outputs = []
    for run in ("cg", "again"):
        out = tmp_path / run
        result = CliRunner().invoke(app, [
            "cg", "run", "cg-demo", "--model", str(tiny_checkpoint), "--data", str(hub), "--out", str(out),
            "--train-config", "cg-demo", "--test-config", "cg-demo", "--unrelated", "subset-13", "--unrelated",
            "subset-23", "--paper-baseline", "23", "--paper-baseline-plus", "24", "--paper-related", "27",
            "--max-steps", "2", "--batch-size", "2", "--per-device-batch-size", "2", "--precision", "fp32",
            "--num-workers", "0", "--no-gradient-checkpointing"])
        assert result.exit_code == 0, result.output
        outputs.append([(out / name).read_bytes() for name in ("results.csv", "results.json", "chart.png")])
    assert outputs[0] == outputs[1]  # same inputs and seed: byte-identical table, JSON and chart
    out = tmp_path / "cg"
    with open(out / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [r["arm"] for r in table] == ["baseline", "baseline_plus", "related"]
    assert [r["train_samples"] for r in table] == ["0", "6", "6"]  # Baseline+ matches Related's size
    assert [r["paper_accuracy"] for r in table] == ["23.0", "24.0", "27.0"]
    assert all(r["total"] == "4" for r in table)
    results = json.loads((out / "results.json").read_text())
    assert results["details"]["related"]["per_subset"]["19"]["total"] == 4
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cg_run_mixes_writes_each_arm_and_resumes(tiny_checkpoint, tmp_path):
    hub = _hand_made_hub(tmp_path / "hub")
    out = tmp_path / "cg"
    base = ["cg", "run", "cg-demo", "--model", str(tiny_checkpoint), "--data", str(hub), "--out", str(out),
            "--train-config", "cg-demo", "--test-config", "cg-demo", "--arms", "baseline,related", "--max-steps", "1",
            "--batch-size", "2", "--per-device-batch-size", "2", "--precision", "fp32", "--num-workers", "0",
            "--no-gradient-checkpointing", "--scoring", "logits", "--mix-config", "subset-13", "--mix-samples", "2"]
    # The mixed dataset is missing: Related fails after Baseline, whose results are already on disk.
    failed = CliRunner().invoke(app, base + ["--mix", str(tmp_path / "no-such-hub")])
    assert failed.exit_code != 0
    with open(out / "results.csv") as handle:
        assert [r["arm"] for r in csv.DictReader(handle)] == ["baseline"]
    result = CliRunner().invoke(app, base + ["--mix", str(hub), "--resume"])
    assert result.exit_code == 0, result.output
    assert "Baseline: read back" in result.output
    with open(out / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [r["arm"] for r in table] == ["baseline", "related"]
    assert table[1]["train_samples"] == "8"  # 6 related rows + 2 mixed in
    assert json.loads((out / "related" / "eval.json").read_text())["scoring"] == "logits"


def test_cg_plan_errors_name_the_fix():
    with pytest.raises(ExperimentError, match="--train-config"):
        plan_experiment("no-such-experiment", "hub")
    with pytest.raises(ExperimentError, match="--unrelated"):
        plan_experiment("x", "hub", train_config="a", test_config="b")
    assert equal_shares({"a": 2, "b": 10}, 8) == {"a": 2, "b": 6}
    with pytest.raises(ExperimentError, match="only 3"):
        equal_shares({"a": 3}, 4)


@pytest.fixture(scope="module")
def fake_cg_hub(tmp_path_factory):
    """Fake archives -> medmat build -> hub builder: a hub folder with cg-two-43 (built once for this module)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_train import build_cg_hub

    return build_cg_hub(tmp_path_factory.mktemp("built"), "two-43")


def test_cg_run_on_a_config_built_from_fake_archives(tiny_checkpoint, fake_cg_hub, tmp_path):
    """`medmat cg run two-43` on the config built from fake archives, paper numbers from the manifests."""
    hub = fake_cg_hub
    plan = plan_experiment("two-43", str(hub))
    assert plan.paper.related is not None and plan.unrelated_configs
    out = tmp_path / "cg"
    result = CliRunner().invoke(app, [
        "cg", "run", "two-43", "--model", str(tiny_checkpoint), "--data", str(hub), "--out", str(out),
        "--max-steps", "1", "--batch-size", "2", "--per-device-batch-size", "2", "--precision", "fp32",
        "--num-workers", "0", "--no-gradient-checkpointing"])
    assert result.exit_code == 0, result.output
    with open(out / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [r["arm"] for r in table] == ["baseline", "baseline_plus", "related"]
    assert table[1]["train_samples"] == table[2]["train_samples"] != "0"
    assert [float(r["paper_accuracy"]) for r in table] == [plan.paper.baseline, plan.paper.baseline_plus,
                                                           plan.paper.related]
    assert (out / "chart.png").exists()


def test_gpu_bench_smoke_runs_on_cpu(fake_cg_hub, tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_train.py"), "--smoke", "--hub", str(fake_cg_hub),
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    phases = {record["phase"]: record for record in json.loads(out.read_text())}
    assert phases["overfit"]["passed"] and phases["overfit"]["after"]["accuracy"] == 100.0
    for name in ("plain", "medmat"):
        assert phases[name]["samples_per_s"] > 0 and 0 < phases[name]["mfu"]
    assert 0 <= phases["medmat"]["data_wait_share"] < 1 and phases["medmat"]["steps"] == 3
    assert phases["eval"]["logits"]["questions_per_s"] > 0 and phases["eval"]["generate"]["questions_per_s"] > 0
    assert phases["eval"]["logits"]["unparsed"] == 0
