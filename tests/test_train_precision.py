"""Mixed precision that keeps the paper's small updates (issue 13, item 1).

At lr 2e-6 an AdamW step moves a weight by about 2e-6; a bf16 weight of 0.02 can only move in steps of 1.2e-4, so
updates applied to bf16 weights round to zero. fp32 master weights under bf16 autocast (precision "bf16") keep
them; bf16 weights with torch-optimi's Kahan-summed AdamW ("bf16-kahan") carry the rounding error to the next step.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from medmat.train.config import TrainConfig  # noqa: E402
from medmat.train.model import ModelError, auto_precision, kahan_available, training_state_gib  # noqa: E402
from medmat.train.tiny import build_random_model, synthetic_rows  # noqa: E402
from medmat.train.trainer import train  # noqa: E402

torch.set_num_threads(1)
H200 = 143771 * 2 ** 20  # nvidia-smi's 143771 MiB (see the device notes)


def _run(tmp_path, precision: str, steps: int = 2):
    rows = synthetic_rows(4)
    model, processor = build_random_model("llava", seed=5)
    if precision.startswith("bf16-"):
        model = model.to(torch.bfloat16)  # what prepare_model does; the comparison starts from these weights
    before = {n: p.detach().float().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(model="tiny", output_dir=tmp_path / precision, max_steps=steps, learning_rate=2e-6,
                      batch_size=4, per_device_batch_size=4, precision=precision, gradient_checkpointing=False,
                      num_workers=0, save=False, warmup_ratio=0.0, lr_scheduler="constant", logging_steps=steps,
                      group_by_length=False)
    model, _, summary, trainer = train(cfg, rows, model=model, processor=processor, return_trainer=True)
    return model, before, summary, trainer


def _moved(named, before, skip=("embed_tokens",)) -> float:
    """Share of weight elements that changed (token embeddings of unseen tokens get no gradient: left out)."""
    total = changed = 0
    for name, value in named:
        if any(s in name for s in skip):
            continue
        diff = value.float() != before[name]
        total += diff.numel()
        changed += int(diff.sum())
    return changed / total


def test_fp32_master_weights_move_at_lr_2e6_where_pure_bf16_weights_do_not(tmp_path):
    model, before, summary, _ = _run(tmp_path, "bf16")
    assert summary["precision"] == "bf16" and summary["dtype"] == "float32"  # master weights stay fp32
    assert _moved(((n, p.detach()) for n, p in model.named_parameters()), before) > 0.99
    norms = [n for n, _ in model.named_parameters() if "norm" in n and "language_model" in n]
    assert norms and all(not torch.equal(dict(model.named_parameters())[n].detach().float(), before[n])
                         for n in norms)
    model, before, summary, _ = _run(tmp_path, "bf16-pure")
    assert summary["dtype"] == "bfloat16"
    assert _moved(((n, p.detach()) for n, p in model.named_parameters()), before) < 0.2  # ~4 %: most updates lost


@pytest.mark.skipif(not kahan_available(), reason="torch-optimi not installed (pip install torch-optimi)")
def test_kahan_summation_keeps_the_updates_bf16_weights_cannot_hold(tmp_path):
    model, before, summary, trainer = _run(tmp_path, "bf16-kahan")
    assert summary["precision"] == "bf16-kahan" and summary["dtype"] == "bfloat16"
    state = trainer.optimizer.state
    effective = []
    for name, param in model.named_parameters():
        comp = state[param].get("kahan_comp") if param in state else None
        effective.append((name, param.detach().float() + (comp.float() if comp is not None else 0)))
    assert _moved(effective, before) > 0.99  # weight + carried remainder: every update kept


def test_auto_precision_follows_the_memory_of_7b_to_11b_models():
    # Parameter counts: LLaVA-1.5-7B 7.06B, Qwen2-VL-7B 8.29B, Llama-3.2-11B-Vision 10.67B (model cards).
    assert auto_precision(2.2e9, H200, kahan=True) == "bf16"  # small models: fp32 master weights fit
    for n in (7.06e9, 8.29e9, 10.67e9):
        assert auto_precision(n, H200, kahan=True) == "bf16-kahan"  # one H200: 16+2 bytes/param do not fit
        assert auto_precision(n, H200, shards=8, kahan=True) == "bf16"  # FSDP over 8: fp32 master weights
    assert training_state_gib(10.67e9, "bf16-kahan") == pytest.approx(99.4, abs=0.1)
    assert auto_precision(7e9, None) == "fp32"
    with pytest.raises(ModelError, match="torch-optimi"):
        auto_precision(10.67e9, H200, kahan=False)
