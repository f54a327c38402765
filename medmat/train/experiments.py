"""`medmat cg run`: one CG experiment's arms (Baseline, Baseline+, Related), a results table and a bar chart.

- Baseline: the untrained model scored on the target's test split.
- Baseline+: trained on as many samples as Related, drawn from subsets unrelated to the target (equal shares,
  seeded), then scored on the same test split.
- Related: trained on the experiment's train split (the related subsets), then scored.

The experiment's definition (unrelated subsets, the paper's numbers) comes from `manifests/cg/*.yaml` through
`medmat.registry.cg_models` when it knows the id; explicit options (`ExperimentPlan` fields) override or replace it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .config import DataSpec, EvalConfig, TrainConfig

ARMS = ("baseline", "baseline_plus", "related")
ARM_TITLES = {"baseline": "Baseline", "baseline_plus": "Baseline+", "related": "Related"}
TABLE_COLUMNS = ("experiment", "arm", "train_samples", "train_steps", "correct", "total", "accuracy", "unparsed",
                 "paper_accuracy", "paper_model")


class PaperNumbers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "LLaVA-1.5-7B"
    baseline: float | None = None
    baseline_plus: float | None = None
    related: float | None = None
    reference: str | None = None


class ExperimentPlan(BaseModel):
    """Where each arm's data lives and what to compare with; built by `plan_experiment`."""

    model_config = ConfigDict(extra="forbid")
    experiment: str = Field(description="experiment id without the cg- prefix")
    data: str = Field(description="hub folder or Hub repo id")
    train_config: str
    test_config: str
    unrelated_configs: list[str] = Field(default_factory=list, description="configs drawn from for Baseline+")
    target: str | None = None
    train_subsets: list[str] = Field(default_factory=list)
    paper: PaperNumbers = PaperNumbers()
    arms: list[str] = Field(default_factory=lambda: list(ARMS))


class ExperimentError(ValueError):
    """An experiment that cannot be run as asked; the message lists the fix."""


def strip_prefix(cg_id: str) -> str:
    return cg_id[3:] if cg_id.startswith("cg-") else cg_id


def manifest_experiment(exp_id: str, manifests: Path | None = None):
    """The CG Experiment with this id (`manifests/cg/`), or None when the manifests do not have it."""
    from ..registry import default_manifests_dir
    from ..registry.cg_models import load_cg

    cg_set, _ = load_cg(Path(manifests) if manifests else default_manifests_dir())
    return cg_set.experiments.get(exp_id)


def plan_experiment(cg_id: str, data: str, manifests: Path | None = None, train_config: str | None = None,
                    test_config: str | None = None, unrelated_configs: list[str] | None = None,
                    paper: dict | None = None, arms: list[str] | None = None) -> ExperimentPlan:
    """Resolve an experiment from the CG manifests, with explicit arguments taking precedence."""
    exp_id = strip_prefix(cg_id)
    exp = manifest_experiment(exp_id, manifests)
    arms = list(arms or ARMS)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ExperimentError(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    numbers = PaperNumbers()
    unrelated = list(unrelated_configs or [])
    target, train_subsets = None, []
    if exp is not None:
        target, train_subsets = exp.target, list(exp.train)
        controls = getattr(exp, "controls", None)
        plus = getattr(controls, "baseline_plus", None)
        if not unrelated and plus is not None:
            # Draw from the same split flavour the experiment's own train config uses (the hub's
            # `subset-NN-paper` configs hold the paper's capped, label-balanced splits).
            flavour = "-paper" if getattr(getattr(exp, "caps", None), "split", "paper") == "paper" else ""
            unrelated = [f"subset-{sid}{flavour}" for sid in plus.subsets]
        if exp.paper is not None:
            numbers = PaperNumbers(model=exp.paper.model, baseline=exp.paper.baseline,
                                   baseline_plus=exp.paper.baseline_plus, related=exp.paper.trained,
                                   reference=exp.paper.reference)
    if paper:
        numbers = numbers.model_copy(update={k: v for k, v in paper.items() if v is not None})
    if exp is None and not (train_config and test_config):
        raise ExperimentError(
            f"no CG experiment {exp_id!r} in the manifests. Either\n"
            f"  1. use an id that `medmat cg list` shows, or\n"
            f"  2. name the data explicitly: --train-config <config> --test-config <config> "
            f"[--unrelated subset-NN ...] [--paper-baseline X --paper-baseline-plus Y --paper-related Z]")
    if "baseline_plus" in arms and not unrelated:
        raise ExperimentError(
            f"{exp_id}: Baseline+ needs unrelated subsets and the experiment names none. Either\n"
            f"  1. pass --unrelated subset-NN (repeatable), or\n"
            f"  2. leave the arm out: --arms baseline,related")
    return ExperimentPlan(experiment=exp_id, data=data, train_config=train_config or f"cg-{exp_id}",
                          test_config=test_config or f"cg-{exp_id}", unrelated_configs=unrelated, target=target,
                          train_subsets=train_subsets, paper=numbers, arms=arms)


def equal_shares(available: dict[str, int], total: int) -> dict[str, int]:
    """Split `total` as evenly as possible over the sources, none taking more than it has (the rest moves on):
    the CG allocation rule (`medmat.mat.cg.allocate`), refusing a total the parts cannot hold."""
    from ..mat.cg import allocate

    if total > sum(available.values()):
        raise ExperimentError(f"Baseline+ needs {total} samples but the unrelated configs hold only "
                              f"{sum(available.values())} ({available}); add more --unrelated configs")
    return allocate(available, total=total)


def baseline_plus_rows(plan: ExperimentPlan, size: int, seed: int):
    """`size` training rows from the unrelated configs, equal shares, seeded."""
    from datasets import concatenate_datasets

    from .data import load_split

    parts = {name: load_split(DataSpec(path=plan.data, config=name, split="train"), seed)
             for name in plan.unrelated_configs}
    shares = equal_shares({name: len(ds) for name, ds in parts.items()}, size)
    picked = [parts[name].shuffle(seed=seed).select(range(n)) for name, n in shares.items() if n]
    return concatenate_datasets(picked).flatten_indices()


def _rank() -> int:
    import os

    return int(os.environ.get("RANK", "0"))


def _world() -> int:
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def _barrier() -> None:
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def free_memory() -> None:
    """Release what the last arm left: Python garbage first, then the CUDA cache (so the next arm starts clean)."""
    import gc

    gc.collect()
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_experiment(plan: ExperimentPlan, model: str, out: Path, train_cfg: dict, eval_cfg: EvalConfig,
                   max_test_samples: int | None = None, log=print, resume: bool = False) -> dict:
    """Run every arm of `plan`; write results.{csv,json} and chart.png under `out` after each arm; return them.

    Under torchrun / accelerate (WORLD_SIZE > 1) every rank trains; only rank 0 evaluates and writes, from the
    model `trainer.save_model` gathered to `<out>/<arm>/final` (so FSDP-sharded models evaluate whole), while the
    other ranks wait. With `resume`, arms whose eval.json exists are read back instead of rerun, and a trained arm
    continues from its last checkpoint (train_cfg `save_steps`).
    """
    import shutil

    from .data import load_split, prepare
    from .evaluate import evaluate
    from .model import apply_image_budget, inference_dtype, load_model, load_processor
    from .trainer import train

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seed = train_cfg.get("seed", 42)
    distributed, main = _world() > 1, _rank() == 0
    test = prepare(load_split(DataSpec(path=plan.data, config=plan.test_config, split="test",
                                       max_samples=max_test_samples), seed), eval_cfg.mode, plan.test_config)
    related = load_split(DataSpec(path=plan.data, config=plan.train_config, split="train"), seed)
    rows, details = [], {}
    results: dict = {}
    for arm in ARMS:
        if arm not in plan.arms:
            continue
        saved = out / arm / "eval.json"
        if resume and saved.exists() and (out / arm / "train_summary.json").exists():
            result = json.loads(saved.read_text())
            summary = json.loads((out / arm / "train_summary.json").read_text())
            log(f"[{plan.experiment}] {ARM_TITLES[arm]}: read back from {saved}")
        else:
            log(f"[{plan.experiment}] {ARM_TITLES[arm]} ...")
            processor = load_processor(model)
            apply_image_budget(processor, eval_cfg.min_pixels, eval_cfg.max_pixels)
            summary = {"samples": 0, "steps": 0}
            net, result = None, None
            if arm == "baseline":
                if main:
                    net = load_model(model, dtype=inference_dtype(eval_cfg.precision), device="auto")
            else:
                train_rows = related if arm == "related" else baseline_plus_rows(plan, len(related), seed)
                keep = bool(train_cfg.get("save", False))
                settings = {**train_cfg, "model": model, "output_dir": out / arm, "save": keep or distributed,
                            "resume": resume}
                net, processor, summary = train(TrainConfig(**settings), train_rows, processor=processor)
                summary = {k: v for k, v in summary.items() if k != "config"}
                if distributed:  # the gathered copy on disk, not this rank's shard
                    del net
                    free_memory()
                    net = load_model(out / arm / "final", dtype=inference_dtype(eval_cfg.precision),
                                     device="auto") if main else None
                    if not keep and main:
                        shutil.rmtree(out / arm / "final", ignore_errors=True)
                else:
                    net = net.to(inference_dtype(eval_cfg.precision))
            if main:
                result = evaluate(net, processor, test, eval_cfg.mode, eval_cfg.batch_size, eval_cfg.max_new_tokens,
                                  scoring=eval_cfg.scoring)
                (out / arm).mkdir(parents=True, exist_ok=True)
                saved.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
                (out / arm / "train_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True,
                                                                         default=str) + "\n")
            del net
            free_memory()
            _barrier()
        if not main:
            continue
        overall = result["overall"]
        rows.append({"experiment": plan.experiment, "arm": arm, "train_samples": summary["samples"],
                     "train_steps": summary["steps"], "correct": overall["correct"], "total": overall["total"],
                     "accuracy": overall["accuracy"], "unparsed": result["unparsed"],
                     "paper_accuracy": getattr(plan.paper, arm), "paper_model": plan.paper.model})
        details[arm] = {"per_subset": result["per_subset"], "per_label": result["per_label"]}
        log(f"[{plan.experiment}] {ARM_TITLES[arm]}: {overall['accuracy']}% ({overall['correct']}/{overall['total']})"
            f", paper {getattr(plan.paper, arm)}")
        # Written after every arm: a later arm that fails leaves the finished ones on disk.
        results = {"plan": json.loads(plan.model_dump_json()), "rows": rows, "details": details,
                   "train": {k: v for k, v in train_cfg.items()}, "eval": json.loads(eval_cfg.model_dump_json())}
        write_table(rows, out / "results.csv")
        (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
        bar_chart(plan, rows, out / "chart.png")
    return results


def write_table(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in TABLE_COLUMNS})


def bar_chart(plan: ExperimentPlan, rows: list[dict], path: Path) -> None:
    """Grouped bars per arm, ours beside the paper's, like one row of the paper's Table 3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [row["arm"] for row in rows]
    xs = range(len(arms))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(arms), 3.6), dpi=100)
    ours = [row["accuracy"] or 0 for row in rows]
    paper = [row["paper_accuracy"] for row in rows]
    bars = ax.bar([x - 0.2 for x in xs], ours, width=0.4, label="ours", color="#3b75af")
    for bar, row in zip(bars, rows):
        ax.annotate(f"{row['accuracy']}%\n{row['correct']}/{row['total']}", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=7)
    if any(p is not None for p in paper):
        pbars = ax.bar([x + 0.2 for x in xs], [p or 0 for p in paper], width=0.4, color="#c9c9c9",
                       label=f"paper ({plan.paper.model})")
        for bar, value in zip(pbars, paper):
            ax.annotate("n/a" if value is None else f"{value:g}%", (bar.get_x() + bar.get_width() / 2,
                        bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs), [ARM_TITLES[a] for a in arms])
    ax.set_ylim(0, 110)
    ax.set_ylabel("option accuracy (%)")
    where = f"target {plan.target}" if plan.target else plan.test_config
    trained = " + ".join(plan.train_subsets) if plan.train_subsets else plan.train_config
    ax.set_title(f"cg-{plan.experiment}: {trained} -> {where}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
