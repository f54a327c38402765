#!/usr/bin/env python
"""The GPU check for medmat.train (issue 6): one prepared script, one run.

What it does, in order, printing one JSON object per phase and writing all of them to --out:
  env       GPU model, torch / transformers versions.
  peak      the bf16 matmul peak of this device, measured here (n x n x n matmuls), the MFU denominator.
  overfit   a tiny random Qwen2-VL overfits 8 samples to 100 % option accuracy (masking, collation and answer
            extraction together, as tests/test_train.py does on CPU).
  data      a CG config built from the fake archives (tests/fixtures) through `medmat build` and the hub builder.
  plain     a plain transformers step of the ~2B random Qwen2-VL-architecture model: fixed batch on the device,
            `model(**batch)` with labels (full-vocabulary logits), backward, fused AdamW, sdpa.
  medmat    the same model and batch size trained by `medmat.train` (Trainer, dataloader workers, collator, loss
            on answer tokens only) for a fixed number of steps on the CG config: samples/s, tokens/s, MFU, peak
            memory and the share of step time spent waiting for data, and the speed-up over `plain`.

Model FLOPs per sample (both paths, same definition): 6 x parameters x tokens for the vision tower (patches) and
the language model (tokens), plus 12 x layers x width x length^2 attention, plus the lm_head where the loss
reads it (answer positions). MFU = achieved model FLOPs/s / measured matmul peak.

Usage
  CPU, tiny (what the test runs):  python bench/gpu_train.py --smoke
  GPU machine (its image has torch, transformers, peft, accelerate but no `datasets` and no medmat deps):
    1. here, on CPU:  python bench/gpu_train.py --prepare-only --hub bench/out/hub
                      pip download -d bench/out/wheels datasets   # plus the wheels `pip install` reports missing
    2. there:         pip install --no-index --find-links bench/out/wheels datasets && \\
                      python bench/gpu_train.py --hub bench/out/hub --out bench/out/gpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The CG experiment whose config the fake archives can build quickly (subsets 13, 16, 19, 21, 23).
DEFAULT_EXPERIMENT = "two-43"
REPORT: list[dict] = []


def emit(phase: str, **fields) -> dict:
    record = {"phase": phase, **fields}
    REPORT.append(record)
    print(json.dumps(record, default=str), flush=True)
    return record


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device, n: int, iters: int) -> float:
    """Measured bf16 (fp32 on CPU) matmul FLOP/s: the denominator of MFU."""
    import torch

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n ** 3 * iters / (time.perf_counter() - start)


def build_cg_hub(hub_parent: Path, experiment: str) -> Path:
    """Fake archives -> `medmat build` -> hub folder with `cg-<experiment>` and its Baseline+ subsets."""
    from medmat.prepare.source import BuildOptions, build_source
    from medmat.registry.cg_models import load_cg
    from medmat.hub import build_hub
    from medmat.registry import default_manifests_dir
    from medmat.validation import validate
    from tests.fakes import materialise

    reg, problems = validate(None)
    if problems:
        raise SystemExit(f"{len(problems)} manifest problem(s); run `medmat validate`")
    exp = load_cg(default_manifests_dir())[0].experiments[experiment]
    subsets = set(exp.train) | {exp.target} | set(exp.controls.baseline_plus.subsets if exp.controls.baseline_plus
                                                  else [])
    sources = sorted(s for s in reg.sources if any(x.id in subsets for x in reg.subset_of(s)))
    for source in sources:
        materialise(source, hub_parent / "data")
        build_source(reg, source, hub_parent / "data", hub_parent, BuildOptions(progress=False))
    build_hub(reg, hub_parent, sorted(subsets))
    return hub_parent / "hub"


def overfit(device, steps: int) -> dict:
    """Tiny random Qwen2-VL, 8 samples: option accuracy before and after `steps` optimizer steps."""
    from medmat.train.config import TrainConfig
    from medmat.train.evaluate import evaluate
    from medmat.train.tiny import build_random_model, synthetic_rows
    from medmat.train.trainer import train

    rows = synthetic_rows(8)
    model, processor = build_random_model("qwen2_vl")
    model.to(device)
    before = evaluate(model, processor, rows)["overall"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model="tiny", output_dir=tmp, max_steps=steps, learning_rate=3e-3, batch_size=8,
                          per_device_batch_size=8, precision="fp32", gradient_checkpointing=False, num_workers=0,
                          save=False, warmup_ratio=0.0, lr_scheduler="constant", logging_steps=steps)
        model, processor, summary = train(cfg, rows, model=model, processor=processor)
    after = evaluate(model, processor, rows)["overall"]
    return {"steps": summary["steps"], "before": before, "after": after, "mean_loss": summary["train_loss"],
            "passed": after["accuracy"] == 100.0}


def model_flops(model, batch) -> tuple[float, int]:
    """(model FLOPs of one training step on `batch`, LM tokens in it); see the module docstring."""
    cfg = model.config
    text, vision = cfg.text_config, cfg.vision_config
    vision_params = sum(p.numel() for n, p in model.named_parameters() if "visual" in n)
    embed = text.vocab_size * text.hidden_size
    lm_params = sum(p.numel() for n, p in model.named_parameters() if "visual" not in n and "lm_head" not in n)
    lm_params -= embed  # the embedding lookup is not a matmul
    mask = batch["attention_mask"]
    tokens = int(mask.sum())
    lengths = mask.sum(1).tolist()
    patches = int(batch["pixel_values"].shape[0])
    per_image = [int(t * h * w) for t, h, w in batch["image_grid_thw"].tolist()]
    answer = int((batch["labels"][:, 1:] != -100).sum())
    flops = 6 * vision_params * patches + 6 * lm_params * tokens + 6 * embed * answer
    flops += 12 * vision.depth * vision.embed_dim * sum(p * p for p in per_image)
    flops += 12 * text.num_hidden_layers * text.hidden_size * sum(n * n for n in lengths)
    return float(flops), tokens


def random_2b(size: str, device, dtype):
    import torch

    from medmat.train.tiny import build_random_model

    with torch.device(device):
        model, processor = build_random_model("qwen2_vl", size=size, dtype=dtype)
    return model.to(device=device, dtype=dtype), processor


def training_rows(hub: Path, config: str, need: int):
    """The CG config's train rows, repeated (seeded order) until there are `need` of them."""
    from datasets import concatenate_datasets

    from medmat.train.config import DataSpec
    from medmat.train.data import load_split

    rows = load_split(DataSpec(path=str(hub), config=config, split="train"))
    repeats = math.ceil(need / len(rows))
    return concatenate_datasets([rows] * repeats).select(range(need)), len(rows)


def plain_step(model, batch, steps: int, warmup: int, device) -> dict:
    """`model(**batch)` (HF loss over full logits), backward, fused AdamW; the batch already on the device."""
    import torch

    fused = device.type == "cuda"
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-6, fused=fused)
    model.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    del opt
    return {"seconds": seconds, "peak_memory_gib": peak / 2 ** 30 if peak else None, "loss": loss.item()}


def medmat_steps(model, processor, rows, batch_size: int, steps: int, warmup: int, device, workers: int) -> dict:
    """medmat.train's Trainer for warmup + steps optimizer steps; times steps and the waits for data between them."""
    import torch
    from transformers import TrainerCallback

    from medmat.train.config import TrainConfig
    from medmat.train.trainer import train

    marks: list[tuple[str, float]] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            marks.append(("begin", time.perf_counter()))

        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            marks.append(("end", time.perf_counter()))

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(model="random", output_dir=tmp, max_steps=warmup + steps, learning_rate=2e-6,
                          batch_size=batch_size, per_device_batch_size=batch_size,
                          precision="bf16" if device.type == "cuda" else "fp32", gradient_checkpointing=False,
                          num_workers=workers, save=False, warmup_ratio=0.0, logging_steps=warmup + steps,
                          optim="adamw_torch_fused")
        _, _, summary = train(cfg, rows, model=model, processor=processor, callbacks=[StepClock()])
    ends = [t for kind, t in marks if kind == "end"]
    begins = [t for kind, t in marks if kind == "begin"]
    # Measured window: from the end of the last warm-up step to the end of the last step. Data wait: the time
    # from one step's end to the next step's begin, when the Trainer fetches the next batch(es).
    window = ends[-1] - ends[warmup - 1]
    wait = sum(begins[i] - ends[i - 1] for i in range(warmup, len(begins)))
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"seconds": window, "data_wait_s": wait, "data_wait_share": wait / window,
            "peak_memory_gib": peak / 2 ** 30 if peak else None, "steps": summary["steps"],
            "loss": summary["losses"][-1] if summary["losses"] else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model, few steps, on CPU (what the test runs)")
    parser.add_argument("--prepare-only", action="store_true", help="build the CG hub folder and stop")
    parser.add_argument("--hub", type=Path, default=None, help="hub folder (built from fake archives if missing)")
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--overfit-steps", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None, help="write every phase's JSON here")
    args = parser.parse_args(argv)

    import torch
    import transformers

    smoke = args.smoke
    if smoke:
        torch.set_num_threads(1)  # tiny models on a shared CPU: threads only contend
    device = torch.device("cpu" if smoke or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not smoke and not args.prepare_only:
        print("no GPU here: run with --smoke for the tiny CPU version", file=sys.stderr)
        return 2
    steps = args.steps or (2 if smoke else 30)
    warmup = args.warmup or (1 if smoke else 5)
    batch = args.batch or (2 if smoke else 16)
    workers = args.workers if args.workers is not None else (0 if smoke else min(8, os.cpu_count() or 1))
    config = f"cg-{args.experiment}"

    with tempfile.TemporaryDirectory() as tmp:
        hub = args.hub or Path(tmp) / "cg" / "hub"
        if not (hub / "README.md").exists():
            started = time.perf_counter()
            built = build_cg_hub(hub.parent, args.experiment)
            if built != hub:
                raise SystemExit(f"the hub builder wrote {built}, expected {hub}; pass --hub <folder>/hub")
            emit("data", hub=str(hub), config=config, built_in_s=round(time.perf_counter() - started, 2))
        if args.prepare_only:
            return 0
        emit("env", device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
             torch=torch.__version__, transformers=transformers.__version__, smoke=smoke)
        peak = matmul_peak(device, 256 if smoke else 8192, 3 if smoke else 50)
        emit("peak", matmul_flops_per_s=peak, dtype="fp32" if device.type == "cpu" else "bf16")
        check = overfit(device, args.overfit_steps)
        emit("overfit", **check)

        dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
        model, processor = random_2b("tiny" if smoke else "2b", device, dtype)
        params = sum(p.numel() for p in model.parameters())
        rows, distinct = training_rows(hub, config, (warmup + steps) * batch)
        from medmat.train.collate import collator_for
        from medmat.train.data import prepare

        prepared = prepare(rows, "choice", config)
        fixed = collator_for(model, processor, "choice", train=True)([prepared[i] for i in range(batch)])
        flops, tokens = model_flops(model, fixed)
        shape = {"batch": batch, "lm_tokens_per_sample": tokens / batch,
                 "text_tokens_per_sample": int((fixed["mm_token_type_ids"] == 0).logical_and(
                     fixed["attention_mask"] == 1).sum()) / batch if "mm_token_type_ids" in fixed else None,
                 "patches_per_sample": fixed["pixel_values"].shape[0] / batch}
        on_device = {k: v.to(device) for k, v in fixed.items()}
        plain = plain_step(model, on_device, steps, warmup, device)
        plain_sps = batch * steps / plain["seconds"]
        emit("plain", params=params, **shape, samples_per_s=plain_sps, tokens_per_s=tokens * steps / plain["seconds"],
             mfu=flops * steps / plain["seconds"] / peak, **plain)
        del on_device
        ours = medmat_steps(model, processor, rows, batch, steps, warmup, device, workers)
        ours_sps = batch * steps / ours["seconds"]
        emit("medmat", params=params, distinct_rows=distinct, samples_per_s=ours_sps,
             tokens_per_s=tokens * steps / ours["seconds"], mfu=flops * steps / ours["seconds"] / peak,
             speedup_vs_plain=ours_sps / plain_sps, targets={"speedup": 1.4, "data_wait_share": 0.05},
             **ours)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(REPORT, indent=2, default=str) + "\n")
    return 0 if check["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
