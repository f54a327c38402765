"""Fine-tune an image-text-to-text model on MAT rows with the transformers `Trainer` (accelerate underneath).

One GPU or several (`accelerate launch` / `torchrun` set the world size), bf16 where available, gradient
checkpointing, length-grouped batches, full fine-tuning or LoRA. The loss covers the answer tokens only (see
`collate.py`).
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
from .model import apply_lora, freeze_vision, load_model, load_processor, pick_dtype


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def training_arguments(cfg: TrainConfig, dtype: torch.dtype):
    """`TrainingArguments` for `cfg`, written for the field names of the installed transformers 5.x."""
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
        weight_decay=cfg.weight_decay, bf16=dtype == torch.bfloat16 and on_cuda, fp16=dtype == torch.float16,
        gradient_checkpointing=cfg.gradient_checkpointing, remove_unused_columns=False,
        dataloader_num_workers=cfg.num_workers, dataloader_pin_memory=on_cuda, report_to="none",
        save_strategy="no", logging_steps=cfg.logging_steps, seed=cfg.seed, data_seed=cfg.seed,
        optim=cfg.optim if on_cuda or "fused" not in cfg.optim else "adamw_torch", disable_tqdm=True,
        length_column_name="length",
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
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in fields})


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


def prepare_model(cfg: TrainConfig, model=None):
    """The model to train: loaded from cfg.model unless given, in the training dtype, LoRA-wrapped if asked."""
    dtype = pick_dtype(cfg.precision)
    if model is None:
        model = load_model(cfg.model, dtype=dtype)
    else:
        model = model.to(dtype)
    if cfg.freeze_vision:
        freeze_vision(model)
    if cfg.method == "lora":
        model = apply_lora(model, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_target)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()  # checkpointed LoRA needs grads flowing into the frozen embeddings
    model.config.use_cache = False
    return model, dtype


def build_train_set(cfg: TrainConfig, train_ds, processor):
    """The training rows: `train_ds` plus every mixed dataset, with token lengths for grouping."""
    parts = [prepare(load_split(spec, cfg.seed), cfg.mode, spec.label()) for spec in cfg.mix]
    ds = mix(prepare(train_ds, cfg.mode, "train"), parts, cfg.seed)
    return add_lengths(ds, processor, cfg.mode) if cfg.group_by_length else ds


def train(cfg: TrainConfig, train_ds, model=None, processor=None, callbacks=None) -> tuple[object, object, dict]:
    """Fine-tune and return (model, processor, summary); saves to cfg.output_dir/final when cfg.save."""
    processor = processor or load_processor(cfg.model)
    model, dtype = prepare_model(cfg, model)
    rows = build_train_set(cfg, train_ds, processor)
    args = training_arguments(cfg, dtype)
    trainer = make_trainer(model=model, args=args, train_dataset=rows, callbacks=list(callbacks or []),
                           data_collator=collator_for(model, processor, cfg.mode, train=True))
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    summary = {"samples": len(rows), "steps": trainer.state.global_step, "seconds": round(seconds, 2),
               "train_loss": result.training_loss, "losses": losses, "dtype": str(dtype).removeprefix("torch."),
               "config": json.loads(cfg.model_dump_json())}
    model = trainer.model
    if cfg.save and trainer.is_world_process_zero():
        final = Path(cfg.output_dir) / "final"
        model.save_pretrained(final)
        processor.save_pretrained(final)
        (final / "train_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    model.config.use_cache = True
    return model, processor, summary
