#!/usr/bin/env python
"""The GPU check for medmat.train (issues 6 and 13): one prepared script, one run.

What it does, in order, printing one JSON object per phase and writing all of them to --out:
  env       GPU model; torch, transformers, datasets, pydantic, pyarrow, torch-optimi, liger-kernel versions.
  peak      the bf16 matmul peak of this device, measured here (n x n x n matmuls), the MFU denominator.
  overfit   a tiny random Qwen2-VL overfits 8 samples to 100 % option accuracy (masking, collation and answer
            extraction together, as tests/test_train.py does on CPU).
  data      a CG config built from the fake archives (tests/fixtures) through `medmat build` and the hub builder.
  plain     a plain transformers step of the ~2B random Qwen2-VL-architecture model: fixed batch on the device,
            bf16 weights, `model(**batch)` with labels (full-vocabulary logits), backward, fused AdamW, sdpa.
  medmat    the same model and batch size trained by `medmat.train` (Trainer, persistent dataloader workers,
            collator, loss on answer tokens only, --precision, default auto: fp32 master weights + bf16 autocast
            for 2B) for a fixed number of steps on the CG config: samples/s, tokens/s, MFU, peak memory, the share
            of step time spent waiting for data, and the speed-up over `plain`.
  liger     the medmat phase again with Liger kernels (only where liger-kernel imports: kept if it measures faster).
  eval      questions/s answering the CG test split with the same model: letter logits (one forward pass) versus
            greedy generation (8 new tokens), batch --eval-batch, and whether the two pick the same letters.

Model FLOPs per sample (both paths, same definition): 6 x parameters x tokens for the vision tower (patches) and
the language model (tokens), plus 12 x layers x width x length^2 attention, plus the lm_head where the loss
reads it (answer positions). MFU = achieved model FLOPs/s / measured matmul peak.

Usage
  CPU, tiny (what the test runs):  python bench/gpu_train.py --smoke
  GPU machine: its image (Python 3.12, torch 2.11, transformers 5.17, peft, accelerate, pyarrow, pandas) lacks
  `datasets` and pydantic (medmat's config) and their small pure-Python needs; GPU_WHEELS below is exactly that
  list, about 4.5 MB of wheels for CPython 3.12 fetched without dependencies:
    1. here:   python bench/gpu_train.py --prepare-only --hub bench/out/hub
               python bench/gpu_train.py --download-wheels .whl        # .whl/ is git-ignored (info/exclude)
    2. there:  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && \
               PYTHONPATH=/tmp/site:$PWD python3 bench/gpu_train.py --hub bench/out/hub --out $OUT/gpu.json
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
# What the GPU image lacks for medmat.train, pinned, for CPython 3.12 manylinux x86_64, fetched with --no-deps
# (their other needs -- numpy, pyarrow, pandas, fsspec, xxhash, huggingface-hub, pyyaml, tqdm, typing-extensions,
# torch, triton -- are in the image). torch-optimi: --precision bf16-kahan; liger-kernel: the liger phase.
GPU_WHEELS = ("datasets==5.2.0", "dill==0.4.0", "multiprocess==0.70.18", "pydantic==2.14.4", "pydantic-core==2.50.5",
              "annotated-types==0.7.0", "typing-inspection==0.4.5", "torch-optimi==0.3.3", "liger-kernel==0.8.5")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def download_wheels(folder: Path) -> int:
    """`pip download` GPU_WHEELS for CPython 3.12 into `folder`, no dependencies; prints the total size."""
    import subprocess

    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "-d", str(folder)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    code = subprocess.call(cmd + list(GPU_WHEELS))
    size = sum(f.stat().st_size for f in Path(folder).glob("*.whl"))
    print(f"{len(list(Path(folder).glob('*.whl')))} wheels, {size / 2 ** 20:.1f} MiB in {folder}")
    return code


def versions() -> dict:
    from importlib import metadata

    found = {}
    for name in ("torch", "transformers", "accelerate", "peft", "datasets", "pydantic", "pyarrow", "torch-optimi",
                 "liger-kernel", "torchvision"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["python"] = sys.version.split()[0]
    return found


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


def medmat_steps(model, processor, rows, batch_size: int, steps: int, warmup: int, device, workers: int,
                 precision: str = "auto", liger: bool = False) -> dict:
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
                          precision=precision if device.type == "cuda" else "fp32", gradient_checkpointing=False,
                          num_workers=workers, save=False, warmup_ratio=0.0, logging_steps=warmup + steps,
                          optim="adamw_torch_fused", liger=liger)
        trained, _, summary = train(cfg, rows, model=model, processor=processor, callbacks=[StepClock()])
    ends = [t for kind, t in marks if kind == "end"]
    begins = [t for kind, t in marks if kind == "begin"]
    # Measured window: from the end of the last warm-up step to the end of the last step. Data wait: the time
    # from one step's end to the next step's begin, when the Trainer fetches the next batch(es).
    window = ends[-1] - ends[warmup - 1]
    wait = sum(begins[i] - ends[i - 1] for i in range(warmup, len(begins)))
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"seconds": window, "data_wait_s": wait, "data_wait_share": wait / window,
            "peak_memory_gib": peak / 2 ** 30 if peak else None, "steps": summary["steps"],
            "precision": summary["precision"], "liger": liger,
            "loss": summary["losses"][-1] if summary["losses"] else None}, trained


def eval_speed(model, processor, rows, batch_size: int, device) -> dict:
    """Questions/s by letter logits and by generation on `rows`, and how often the two pick the same letter."""
    from medmat.train.evaluate import evaluate

    out = {}
    picked = {}
    for scoring in ("logits", "generate"):
        sync(device)
        result = evaluate(model, processor, rows, batch_size=batch_size, scoring=scoring)
        sync(device)
        out[scoring] = {"questions": result["overall"]["total"], "seconds": result["seconds"],
                        "questions_per_s": result["questions_per_s"], "accuracy": result["overall"]["accuracy"],
                        "unparsed": result["unparsed"]}
        picked[scoring] = [s["extracted"] for s in result["samples"]]
    same = [a == b for a, b in zip(picked["logits"], picked["generate"]) if b is not None]
    out["speedup_logits_vs_generate"] = out["logits"]["questions_per_s"] / out["generate"]["questions_per_s"]
    out["agreement_where_parsed"] = sum(same) / len(same) if same else None
    return out


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
    parser.add_argument("--precision", default="auto", help="medmat phase precision (auto: bf16 for the 2B model)")
    parser.add_argument("--eval-rows", type=int, default=None, help="test questions for the eval phase")
    parser.add_argument("--eval-batch", type=int, default=None)
    parser.add_argument("--no-liger", action="store_true", help="skip the liger phase")
    parser.add_argument("--download-wheels", type=Path, default=None, help="fetch GPU_WHEELS into this folder, stop")
    parser.add_argument("--out", type=Path, default=None, help="write every phase's JSON here")
    args = parser.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.download_wheels)

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
             torch=torch.__version__, transformers=transformers.__version__, smoke=smoke, versions=versions())
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
        ours, trained = medmat_steps(model, processor, rows, batch, steps, warmup, device, workers, args.precision)
        ours_sps = batch * steps / ours["seconds"]
        emit("medmat", params=params, distinct_rows=distinct, samples_per_s=ours_sps,
             tokens_per_s=tokens * steps / ours["seconds"], mfu=flops * steps / ours["seconds"] / peak,
             speedup_vs_plain=ours_sps / plain_sps, targets={"speedup": 1.4, "data_wait_share": 0.05},
             **ours)
        if device.type == "cuda" and not args.no_liger and versions()["liger-kernel"]:
            try:
                fast, trained = medmat_steps(trained, processor, rows, batch, steps, warmup, device, workers,
                                             args.precision, liger=True)
                emit("liger", samples_per_s=batch * steps / fast["seconds"],
                     speedup_vs_medmat=batch * steps / fast["seconds"] / ours_sps, **fast)
            except Exception as exc:  # noqa: BLE001 - an optional kernel library must not end the run
                emit("liger", error=f"{type(exc).__name__}: {exc}")
        from medmat.train.config import DataSpec
        from medmat.train.data import load_split

        test = prepare(load_split(DataSpec(path=str(hub), config=config, split="test",
                                           max_samples=args.eval_rows or (4 if smoke else 128))), "choice", config)
        net = trained.to(torch.bfloat16 if device.type == "cuda" else torch.float32)
        emit("eval", rows=len(test), batch=args.eval_batch or (2 if smoke else 16),
             **eval_speed(net, processor, test, args.eval_batch or (2 if smoke else 16), device))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(REPORT, indent=2, default=str) + "\n")
    return 0 if check["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
