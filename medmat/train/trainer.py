"""Fine-tune an image-text-to-text model on MAT rows with the transformers `Trainer` (accelerate underneath).

One GPU or several (`accelerate launch` / `torchrun` set the world size), gradient checkpointing, length-grouped
batches, full fine-tuning or LoRA. The loss covers the answer tokens only (see `collate.py`).

Precision (`TrainConfig.precision`; docs/training.md has the memory each needs):
- "bf16": fp32 master weights, bf16 autocast (Trainer `bf16=True` over an fp32 model), fused AdamW in fp32.
  At lr 2e-6 every weight moves; 16 bytes of state per parameter.
- "bf16-kahan": bf16 weights, torch-optimi's AdamW with Kahan summation (the rounding error of each update is
  carried to the next, so small updates accumulate instead of rounding away); 10 bytes per parameter.
- "bf16-pure": bf16 weights and plain AdamW. Most updates at lr 2e-6 round to zero (a bf16 weight of 0.02 moves
  only by steps of 1.2e-4); kept to show that, never chosen by "auto".
- "auto": "bf16" when fp32 master state fits the GPU(s), else "bf16-kahan"; fp32 on CPU.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import time
from pathlib import Path

import torch

from .collate import IGNORE, collator_for
from .config import TrainConfig
from .data import add_lengths, load_split, mix, prepare
from .model import (ModelError, apply_image_budget, apply_lora, freeze_vision, kahan_available,
                    load_model, load_processor, pick_dtype, resolve_precision)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def training_arguments(cfg: TrainConfig, precision: str):
    """`TrainingArguments` for `cfg` at a resolved `precision`, for the field names of the installed transformers."""
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    per_step = cfg.per_device_batch_size * _world_size()
    if cfg.batch_size % per_step:
        raise ValueError(f"batch_size {cfg.batch_size} is not a multiple of per-device batch "
                         f"{cfg.per_device_batch_size} x {_world_size()} device(s)")
    on_cuda = torch.cuda.is_available()
    kwargs = dict(
        output_dir=str(cfg.output_dir), per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.batch_size // per_step, learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, lr_scheduler_type=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay, bf16=precision == "bf16", fp16=precision == "fp16",
        gradient_checkpointing=cfg.gradient_checkpointing, remove_unused_columns=False,
        dataloader_num_workers=cfg.num_workers, dataloader_pin_memory=on_cuda, report_to=cfg.report_to,
        dataloader_persistent_workers=cfg.num_workers > 0,  # workers live across epochs, not restarted each one
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps, seed=cfg.seed, data_seed=cfg.seed,
        optim=cfg.optim if on_cuda or "fused" not in cfg.optim else "adamw_torch", disable_tqdm=True,
        length_column_name="length", use_liger_kernel=cfg.liger,
    )
    if cfg.gradient_checkpointing:
        kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if "activation_checkpointing" in fields:  # the newer name of the same switch (transformers >= 5.2x)
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
        if "gradient_checkpointing_kwargs" in kwargs:
            kwargs["activation_checkpointing_kwargs"] = kwargs.pop("gradient_checkpointing_kwargs")
    if "warmup_ratio" in fields:
        kwargs["warmup_ratio"] = cfg.warmup_ratio
    else:  # transformers >= 5 folds the ratio into warmup_steps (a float below 1 is a ratio)
        kwargs["warmup_steps"] = cfg.warmup_ratio
    if "train_sampling_strategy" in fields:
        kwargs["train_sampling_strategy"] = "group_by_length" if cfg.group_by_length else "random"
    else:
        kwargs["group_by_length"] = cfg.group_by_length
    if cfg.num_workers == 0:
        kwargs.pop("dataloader_num_workers")
    if not on_cuda and precision in ("bf16", "fp16"):
        kwargs["use_cpu"] = True  # autocast on the CPU (what the tests run)
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in fields})


def optimizer_for(cfg: TrainConfig, precision: str):
    """`optimizer_cls_and_kwargs` for the Trainer: torch-optimi's Kahan-summed AdamW for "bf16-kahan", else None
    (the Trainer's own `optim`)."""
    if precision != "bf16-kahan":
        return None
    try:
        from optimi import AdamW
    except ImportError as exc:
        raise ModelError("--precision bf16-kahan needs torch-optimi: pip install 'torch-optimi>=0.3'") from exc
    return AdamW, {"lr": cfg.learning_rate, "weight_decay": cfg.weight_decay, "kahan_sum": True}


def answer_columns(labels: torch.Tensor) -> torch.Tensor:
    """Positions t whose next token is an answer token in any row: the only logits the loss reads."""
    return (labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(1)


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, columns: torch.Tensor,
                num_items_in_batch: torch.Tensor | int | None = None) -> torch.Tensor:
    """Next-token cross-entropy over the answer tokens, from logits computed only at `columns`."""
    targets = labels[:, columns + 1]
    total = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                              ignore_index=IGNORE, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE).sum()
    if torch.is_tensor(count):
        count = count.to(total.device)
    return total / count


def _accepts_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def make_trainer(**kwargs):
    """A `transformers.Trainer` whose loss projects onto the vocabulary only where answer tokens are predicted.

    The labels mask the prompt anyway, so computing the lm_head (and its fp32 cross-entropy) over every prompt
    and image position is wasted work; `logits_to_keep` with the answer columns gives the same loss for a
    fraction of the memory and time. Models without `logits_to_keep` fall back to their own loss.
    """
    from transformers import Trainer

    class AnswerLossTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if "labels" not in inputs or not _accepts_logits_to_keep(self.accelerator.unwrap_model(model)):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs = dict(inputs)
            labels = inputs.pop("labels")
            columns = answer_columns(labels)
            outputs = model(**inputs, logits_to_keep=columns, use_cache=False)
            loss = answer_loss(outputs.logits, labels, columns, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as Trainer does: DDP averages, the count is global
            return (loss, outputs) if return_outputs else loss

    return AnswerLossTrainer(**kwargs)


def _count_parameters(cfg: TrainConfig) -> int:
    """Parameters of cfg.model without loading its weights (meta device)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForImageTextToText

    with init_empty_weights():
        skeleton = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(cfg.model))
    return sum(p.numel() for p in skeleton.parameters())


def choose_precision(cfg: TrainConfig, model=None) -> str:
    """cfg.precision with "auto" decided from the parameter count (read from the config, weights not loaded)."""
    if cfg.precision == "auto" and torch.cuda.is_available():
        n_params = sum(p.numel() for p in model.parameters()) if model is not None else _count_parameters(cfg)
        precision = resolve_precision("auto", n_params if cfg.method == "full" else 0)
    else:
        precision = resolve_precision(cfg.precision, 0)
    if precision == "bf16-kahan" and not kahan_available():
        raise ModelError("--precision bf16-kahan needs torch-optimi: pip install 'torch-optimi>=0.3'")
    return precision


def prepare_model(cfg: TrainConfig, model=None, precision: str | None = None):
    """(model, precision): loaded from cfg.model unless given, its weights in the precision's dtype (fp32 master
    weights for the autocast modes, full fine-tuning; bf16 for LoRA's frozen base), LoRA-wrapped if asked."""
    precision = precision or choose_precision(cfg, model)
    dtype = pick_dtype(precision)
    if cfg.method == "lora" and precision in ("bf16", "fp16") and torch.cuda.is_available():
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16  # frozen base; adapters made fp32 below
    if model is None:
        model = load_model(cfg.model, dtype=dtype, attn_implementation=cfg.attn_implementation)
    else:
        model = model.to(dtype)
    if cfg.freeze_vision:
        freeze_vision(model)
    if cfg.method == "lora":
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()  # checkpointed LoRA needs grads flowing into the frozen embeddings
    if cfg.method == "lora":
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()  # adapters in fp32 under autocast
    model.config.use_cache = False
    return model, precision


def build_train_set(cfg: TrainConfig, train_ds, processor):
    """(training rows, rows dropped as longer than cfg.max_length): `train_ds` plus every mixed dataset, with token
    lengths for grouping. A row over the cap is dropped whole (and counted), never cut: cutting would lose image
    tokens or the answer."""
    parts = [prepare(load_split(spec, cfg.seed), cfg.mode, spec.label()) for spec in cfg.mix]
    ds = mix(prepare(train_ds, cfg.mode, "train"), parts, cfg.seed)
    if not (cfg.group_by_length or cfg.max_length):
        return ds, 0
    ds = add_lengths(ds, processor, cfg.mode)
    if not cfg.max_length:
        return ds, 0
    keep = [i for i, n in enumerate(ds["length"]) if n <= cfg.max_length]
    if not keep:
        raise ModelError(f"every training row is longer than --max-length {cfg.max_length} tokens; raise it or "
                         "lower --max-pixels")
    return (ds.select(keep) if len(keep) < len(ds) else ds), len(ds) - len(keep)


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest `checkpoint-N` folder the Trainer wrote under output_dir, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(output_dir)) if Path(output_dir).is_dir() else None


def train(cfg: TrainConfig, train_ds, model=None, processor=None, callbacks=None, return_trainer: bool = False):
    """Fine-tune and return (model, processor, summary) (and the Trainer when `return_trainer`); saves the model
    with `trainer.save_model` (which gathers FSDP / ZeRO-3 shards) to cfg.output_dir/final when cfg.save."""
    processor = processor or load_processor(cfg.model)
    budget = apply_image_budget(processor, cfg.min_pixels, cfg.max_pixels)
    precision = choose_precision(cfg, model)
    # The arguments first: they start the distributed state, so that under FSDP with cpu_ram_efficient_loading
    # only rank 0 reads the weights from disk.
    args = training_arguments(cfg, precision)
    _ = args.device  # sets the distributed state up now, before any weights are read
    model, precision = prepare_model(cfg, model, precision)
    rows, dropped = build_train_set(cfg, train_ds, processor)
    trainer = make_trainer(model=model, args=args, train_dataset=rows, callbacks=list(callbacks or []),
                           data_collator=collator_for(model, processor, cfg.mode, train=True),
                           optimizer_cls_and_kwargs=optimizer_for(cfg, precision))
    resume = last_checkpoint(cfg.output_dir) if cfg.resume else None
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    weights = next((p.dtype for p in trainer.model.parameters() if p.is_floating_point()), torch.float32)
    summary = {"samples": len(rows), "steps": trainer.state.global_step, "seconds": round(seconds, 2),
               "train_loss": result.training_loss, "losses": losses, "precision": precision,
               "dtype": str(weights).removeprefix("torch."), "dropped_too_long": dropped,
               "image_pixels": list(budget) if budget else None, "resumed_from": resume,
               "config": json.loads(cfg.model_dump_json())}
    if cfg.save:
        final = Path(cfg.output_dir) / "final"
        trainer.save_model(str(final))  # every rank takes part (FSDP gathers); only the main process writes
        if trainer.is_world_process_zero():
            processor.save_pretrained(final)
            (final / "train_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    model = trainer.model
    model.config.use_cache = True
    return (model, processor, summary, trainer) if return_trainer else (model, processor, summary)
