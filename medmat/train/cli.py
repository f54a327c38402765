"""`medmat train`, `medmat eval` and `medmat cg run` (the training extra: `pip install 'medmat[train]'`).

Heavy imports (torch, transformers) happen inside the commands, so `medmat --help` works without the extra.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from .config import PRESETS, DataSpec, EvalConfig, TrainConfig, preset

ModelOpt = Annotated[str, typer.Option("--model", help="checkpoint folder or Hub id (AutoModelForImageTextToText)")]
DataOpt = Annotated[str, typer.Option("--data", help="hub folder, Hub repo id, Parquet file/folder/glob")]
ConfigOpt = Annotated[Optional[str], typer.Option("--config", help="config name: subset-NN, source-..., cg-...")]
ModeOpt = Annotated[str, typer.Option("--mode", help="choice: question_choice -> letter; open: question -> answer")]
PresetOpt = Annotated[Optional[str], typer.Option("--preset", help=f"paper settings: {', '.join(sorted(PRESETS))}")]
MethodOpt = Annotated[Optional[str], typer.Option("--method", help="full or lora")]
EpochsOpt = Annotated[Optional[float], typer.Option("--epochs")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="learning rate")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="global batch size")]
DeviceBatchOpt = Annotated[Optional[int], typer.Option("--per-device-batch-size")]
StepsOpt = Annotated[Optional[int], typer.Option("--max-steps", help="stop after this many optimizer steps")]
PrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="auto (GPU: bf16 if fp32 master weights fit, else bf16-kahan; CPU: fp32), bf16 (fp32 master "
                        "weights + bf16 autocast), bf16-kahan (bf16 weights, Kahan-summed AdamW; torch-optimi), "
                        "fp16, fp32")]
SeedOpt = Annotated[int, typer.Option("--seed")]
WorkersOpt = Annotated[int, typer.Option("--num-workers", help="data-loading worker processes")]
GcOpt = Annotated[bool, typer.Option("--gradient-checkpointing/--no-gradient-checkpointing")]
GroupOpt = Annotated[bool, typer.Option("--group-by-length/--no-group-by-length",
                                        help="batch rows of similar token length (less padding)")]
MinPixelsOpt = Annotated[Optional[int], typer.Option("--min-pixels", help="image floor in pixels (Qwen2-VL-style "
                                                                          "processors)")]
MaxPixelsOpt = Annotated[int, typer.Option("--max-pixels", help="image cap in pixels (Qwen2-VL-style processors); "
                                                                "default 602112 = 768 tokens of 28x28 px")]
MaxLengthOpt = Annotated[Optional[int], typer.Option("--max-length", help="drop (and count) training rows longer "
                                                                          "than this many tokens; nothing is cut")]
SaveStepsOpt = Annotated[int, typer.Option("--save-steps", help="checkpoint every N optimizer steps (0: none)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint (cg run: also skip "
                                                          "finished arms)")]
ReportOpt = Annotated[str, typer.Option("--report-to", help="none, tensorboard, wandb, ... (transformers "
                                                            "integrations)")]
ScoringOpt = Annotated[str, typer.Option("--scoring", help="generate (greedy reply, option read from text) or "
                                                           "logits (option letter with the highest logit; faster)")]
LigerOpt = Annotated[bool, typer.Option("--liger", help="Liger kernels (pip install liger-kernel)")]
MixOpt = Annotated[Optional[str], typer.Option("--mix", help="extra dataset mixed into training (same forms as "
                                                             "--data), e.g. general four-option questions")]
MixConfigOpt = Annotated[Optional[str], typer.Option("--mix-config")]
MixSplitOpt = Annotated[str, typer.Option("--mix-split")]
MixSamplesOpt = Annotated[Optional[int], typer.Option("--mix-samples", help="rows of the mixed dataset")]


def _missing_extra(exc: ImportError) -> typer.Exit:
    typer.echo(f"the training extra is not installed ({exc}); run: pip install 'medmat[train]'", err=True)
    return typer.Exit(2)


def _train_settings(preset_name, method, epochs, lr, batch_size, per_device_batch_size, max_steps, mode, precision,
                    seed, num_workers, gradient_checkpointing, group_by_length, **extra) -> dict:
    settings = preset(preset_name) if preset_name else {}
    given = {"method": method, "epochs": epochs, "learning_rate": lr, "batch_size": batch_size,
             "per_device_batch_size": per_device_batch_size, "max_steps": max_steps}
    settings.update({k: v for k, v in given.items() if v is not None})
    if "per_device_batch_size" not in settings:
        settings["per_device_batch_size"] = min(4, settings.get("batch_size", 32))
    settings.update(mode=mode, precision=precision, seed=seed, num_workers=num_workers,
                    gradient_checkpointing=gradient_checkpointing, group_by_length=group_by_length, **extra)
    return settings


def train_command(
    model: ModelOpt,
    data: DataOpt,
    config: ConfigOpt = None,
    split: Annotated[str, typer.Option("--split")] = "train",
    out: Annotated[Path, typer.Option("--out", help="output folder (the model goes to OUT/final)")] = Path(
        "runs/train"),
    preset_name: PresetOpt = None,
    method: MethodOpt = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    per_device_batch_size: DeviceBatchOpt = None,
    max_steps: StepsOpt = None,
    max_samples: Annotated[Optional[int], typer.Option("--max-samples", help="train on this many rows at most")] = None,
    mix: MixOpt = None,
    mix_config: MixConfigOpt = None,
    mix_split: MixSplitOpt = "train",
    mix_samples: MixSamplesOpt = None,
    mode: ModeOpt = "choice",
    precision: PrecisionOpt = "auto",
    freeze_vision: Annotated[bool, typer.Option("--freeze-vision", help="train only the projector and LLM")] = False,
    lora_r: Annotated[int, typer.Option("--lora-r")] = 16,
    lora_target: Annotated[Optional[str], typer.Option("--lora-target", help="regex of modules for LoRA")] = None,
    gradient_checkpointing: GcOpt = True,
    group_by_length: GroupOpt = True,
    num_workers: WorkersOpt = 2,
    seed: SeedOpt = 42,
    min_pixels: MinPixelsOpt = None,
    max_pixels: MaxPixelsOpt = 602112,
    max_length: MaxLengthOpt = None,
    save_steps: SaveStepsOpt = 0,
    resume: ResumeOpt = False,
    report_to: ReportOpt = "none",
    liger: LigerOpt = False,
) -> None:
    """Fine-tune an image-text-to-text model on one config's split (loss on the answer tokens only)."""
    try:
        from .data import load_split
        from .trainer import train
    except ImportError as exc:
        raise _missing_extra(exc) from exc
    settings = _train_settings(preset_name, method, epochs, lr, batch_size, per_device_batch_size, max_steps, mode,
                               precision, seed, num_workers, gradient_checkpointing, group_by_length,
                               freeze_vision=freeze_vision, lora_r=lora_r, lora_target=lora_target,
                               min_pixels=min_pixels, max_pixels=max_pixels, max_length=max_length,
                               save_steps=save_steps, resume=resume, report_to=report_to, liger=liger)
    if mix:
        settings["mix"] = [DataSpec(path=mix, config=mix_config, split=mix_split, max_samples=mix_samples)]
    cfg = TrainConfig(model=model, output_dir=out, **settings)
    rows = load_split(DataSpec(path=data, config=config, split=split, max_samples=max_samples), seed)
    _, _, summary = train(cfg, rows)
    typer.echo(f"trained on {summary['samples']} rows, {summary['steps']} steps in {summary['seconds']} s, "
               f"loss {summary['train_loss']:.4f} -> {out / 'final'}")


def eval_command(
    model: ModelOpt,
    data: DataOpt,
    config: ConfigOpt = None,
    split: Annotated[str, typer.Option("--split")] = "test",
    out: Annotated[Path, typer.Option("--out", help="folder for eval.json, per_subset.csv, per_label.csv")] = Path(
        "runs/eval"),
    mode: ModeOpt = "choice",
    batch_size: Annotated[int, typer.Option("--batch-size")] = 8,
    max_samples: Annotated[Optional[int], typer.Option("--max-samples")] = None,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens")] = None,
    precision: PrecisionOpt = "auto",
    seed: SeedOpt = 42,
    scoring: ScoringOpt = "generate",
    min_pixels: MinPixelsOpt = None,
    max_pixels: MaxPixelsOpt = 602112,
) -> None:
    """Score a model on one config's split (on the GPU when there is one): option accuracy per subset and label."""
    try:
        from .data import load_split, prepare
        from .evaluate import evaluate
        from .model import apply_image_budget, inference_dtype, load_model, load_processor
    except ImportError as exc:
        raise _missing_extra(exc) from exc
    eval_cfg = EvalConfig(mode=mode, batch_size=batch_size, max_new_tokens=max_new_tokens, precision=precision,
                          scoring=scoring, min_pixels=min_pixels, max_pixels=max_pixels)
    spec = DataSpec(path=data, config=config, split=split, max_samples=max_samples)
    rows = prepare(load_split(spec, seed), mode, spec.label())
    net = load_model(model, dtype=inference_dtype(precision), device="auto")
    processor = load_processor(model)
    apply_image_budget(processor, min_pixels, max_pixels)
    result = evaluate(net, processor, rows, mode, eval_cfg.batch_size, eval_cfg.max_new_tokens, progress=True,
                      scoring=eval_cfg.scoring)
    write_eval(result, out)
    overall = result["overall"]
    typer.echo(f"{spec.label()}: {overall['accuracy']}% ({overall['correct']}/{overall['total']}), "
               f"{result['unparsed']} unparsed replies")
    for subset, counts in result["per_subset"].items():
        typer.echo(f"    subset {subset}: {counts['accuracy']}% ({counts['correct']}/{counts['total']})")
    typer.echo(f"-> {out}")


def write_eval(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    for name, key in (("per_subset.csv", "per_subset"), ("per_label.csv", "per_label")):
        with open(out / name, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([key.removeprefix("per_"), "correct", "total", "accuracy"])
            for item, counts in result[key].items():
                writer.writerow([item, counts["correct"], counts["total"], counts["accuracy"]])


def cg_run_command(
    cg_id: Annotated[str, typer.Argument(help="experiment id (with or without the cg- prefix)")],
    model: ModelOpt,
    data: DataOpt,
    out: Annotated[Optional[Path], typer.Option("--out", help="results folder (default runs/cg-<id>)")] = None,
    arms: Annotated[str, typer.Option("--arms", help="comma-separated: baseline,baseline_plus,related")] = (
        "baseline,baseline_plus,related"),
    train_config: Annotated[Optional[str], typer.Option("--train-config", help="default cg-<id>")] = None,
    test_config: Annotated[Optional[str], typer.Option("--test-config", help="default cg-<id>")] = None,
    unrelated: Annotated[Optional[list[str]], typer.Option("--unrelated",
                                                           help="config for Baseline+ (repeatable)")] = None,
    paper_baseline: Annotated[Optional[float], typer.Option("--paper-baseline")] = None,
    paper_baseline_plus: Annotated[Optional[float], typer.Option("--paper-baseline-plus")] = None,
    paper_related: Annotated[Optional[float], typer.Option("--paper-related")] = None,
    preset_name: PresetOpt = None,
    method: MethodOpt = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    per_device_batch_size: DeviceBatchOpt = None,
    max_steps: StepsOpt = None,
    max_test_samples: Annotated[Optional[int], typer.Option("--max-test-samples")] = None,
    eval_batch_size: Annotated[int, typer.Option("--eval-batch-size")] = 8,
    mode: ModeOpt = "choice",
    precision: PrecisionOpt = "auto",
    save_models: Annotated[bool, typer.Option("--save-models/--no-save-models",
                                              help="keep each trained arm's model")] = False,
    gradient_checkpointing: GcOpt = True,
    group_by_length: GroupOpt = True,
    num_workers: WorkersOpt = 2,
    seed: SeedOpt = 42,
    manifests: Annotated[Optional[Path], typer.Option("--manifests", help="manifests folder with cg/")] = None,
    mix: MixOpt = None,
    mix_config: MixConfigOpt = None,
    mix_split: MixSplitOpt = "train",
    mix_samples: MixSamplesOpt = None,
    scoring: ScoringOpt = "generate",
    min_pixels: MinPixelsOpt = None,
    max_pixels: MaxPixelsOpt = 602112,
    max_length: MaxLengthOpt = None,
    save_steps: SaveStepsOpt = 0,
    resume: ResumeOpt = False,
    report_to: ReportOpt = "none",
    liger: LigerOpt = False,
    box_style: Annotated[Optional[str], typer.Option("--box-style", help="box text of detection rows: qwen-vl, "
                                                     "minigpt-v2, nextchat or medmat (default)")] = None,
    scale: Annotated[Optional[float], typer.Option("--scale", help="multiply every sample count (caps, target "
                                                   "data) by this, e.g. 0.001 for a smoke run on small data")] = None,
) -> None:
    """Run one CG experiment: Baseline, Baseline+ and Related; write results.csv/json and chart.png.

    Experiments of the other kinds (three-source, scaling, data-limited, cls-det, pilot, backbones, repeats,
    few-shot) run through `medmat.train.cg_kinds` from the subsets' own configs, under their caps."""
    from .experiments import ExperimentError, plan_experiment, run_experiment, strip_prefix

    if cg_kind_of(cg_id, manifests) not in (None, "two-source") or scale or box_style:
        return cg_run_kind(cg_id, model, data, out, _train_settings(
            preset_name, method, epochs, lr, batch_size, per_device_batch_size, max_steps, mode, precision, seed,
            num_workers, gradient_checkpointing, group_by_length, save=save_models),
            EvalConfig(mode=mode, batch_size=eval_batch_size, precision=precision), manifests, box_style,
            max_test_samples, scale)

    try:
        plan = plan_experiment(cg_id, data, manifests, train_config, test_config, unrelated,
                               {"baseline": paper_baseline, "baseline_plus": paper_baseline_plus,
                                "related": paper_related}, [a.strip() for a in arms.split(",") if a.strip()])
    except ExperimentError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    settings = _train_settings(preset_name, method, epochs, lr, batch_size, per_device_batch_size, max_steps, mode,
                               precision, seed, num_workers, gradient_checkpointing, group_by_length,
                               save=save_models, min_pixels=min_pixels, max_pixels=max_pixels,
                               max_length=max_length, save_steps=save_steps, report_to=report_to, liger=liger)
    if mix:  # e.g. the general four-option questions the paper mixed into training
        settings["mix"] = [DataSpec(path=mix, config=mix_config, split=mix_split, max_samples=mix_samples)]
    TrainConfig(model=model, output_dir=Path("."), **settings)  # refuse bad settings before any work
    folder = out or Path("runs") / f"cg-{strip_prefix(cg_id)}"
    eval_cfg = EvalConfig(mode=mode, batch_size=eval_batch_size, precision=precision, scoring=scoring,
                          min_pixels=min_pixels, max_pixels=max_pixels)
    from .data import DataError

    try:
        run_experiment(plan, model, folder, settings, eval_cfg, max_test_samples, log=typer.echo, resume=resume)
    except ImportError as exc:
        raise _missing_extra(exc) from exc
    except (ExperimentError, DataError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"-> {folder / 'results.csv'}, {folder / 'results.json'}, {folder / 'chart.png'}")


def cg_kind_of(cg_id: str, manifests: Path | None) -> str | None:
    """The family of a CG experiment in the manifests, or None when it is not there."""
    from ..registry import default_manifests_dir
    from ..registry.cg_models import load_cg
    from .experiments import strip_prefix

    cg, _ = load_cg(Path(manifests) if manifests else default_manifests_dir())
    exp = cg.experiments.get(strip_prefix(cg_id))
    return exp.kind.value if exp is not None else None


def cg_run_kind(cg_id, model, data, out, settings, eval_cfg, manifests, box_style, max_test_samples, scale) -> None:
    """`medmat cg run` for the kinds of `medmat.train.cg_kinds`."""
    from .cg_kinds import KindError, run_kind
    from .experiments import strip_prefix

    from .scoring import STYLES

    TrainConfig(model=model, output_dir=Path("."), **settings)  # refuse bad settings before any work
    if box_style is not None and box_style not in STYLES:
        typer.echo(f"--box-style {box_style!r} is not a box style; use one of {', '.join(STYLES)}", err=True)
        raise typer.Exit(2)
    folder = out or Path("runs") / f"cg-{strip_prefix(cg_id)}"
    try:
        run_kind(strip_prefix(cg_id), data, model, folder, settings, eval_cfg, manifests, box_style,
                 max_test_samples, scale, log=typer.echo)
    except ImportError as exc:
        raise _missing_extra(exc) from exc
    except KindError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"-> {folder / 'results.csv'}, {folder / 'results.json'}")


def register(app: typer.Typer) -> None:
    """Add `train` and `eval` to `app`, and `run` to the `cg` group."""
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    group = next(g.typer_instance for g in app.registered_groups if g.name == "cg")
    group.command("run")(cg_run_command)
