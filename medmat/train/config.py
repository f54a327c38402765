"""Typed training and evaluation settings, and the paper's presets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Mode = Literal["choice", "open"]
# bf16: fp32 master weights, bf16 autocast (16 bytes/parameter of state); bf16-kahan: bf16 weights and
# torch-optimi's AdamW with Kahan summation (10 bytes/parameter); bf16-pure: bf16 weights and plain AdamW, which
# loses most updates at the paper's learning rates (kept only to show that); auto: see model.auto_precision.
Precision = Literal["auto", "bf16", "bf16-kahan", "bf16-pure", "fp16", "fp32"]
Scoring = Literal["generate", "logits"]


class DataSpec(BaseModel):
    """One split of a dataset: a hub folder or Hub repo with a config name, Parquet files, or a saved dataset."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="hub folder, Hub repo id, Parquet file/folder/glob, or a save_to_disk folder")
    config: str | None = Field(None, description="config name inside a hub folder or repo (subset-NN, cg-...)")
    split: str = "train"
    max_samples: int | None = Field(None, ge=1, description="take this many rows (seeded shuffle) at most")

    def label(self) -> str:
        return f"{self.path}" + (f" [{self.config}]" if self.config else "") + f" ({self.split})"


class TrainConfig(BaseModel):
    """Everything `medmat train` needs; the CLI and `presets` fill it."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="local checkpoint folder or Hub id of an image-text-to-text model")
    output_dir: Path
    mode: Mode = "choice"
    method: Literal["full", "lora"] = "full"
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimizer steps (overrides epochs when > 0)")
    learning_rate: float = Field(2e-5, gt=0)
    batch_size: int = Field(32, ge=1, description="global batch: per-device batch x devices x accumulation")
    per_device_batch_size: int = Field(4, ge=1)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler: str = "cosine"
    precision: Precision = "auto"
    gradient_checkpointing: bool = True
    group_by_length: bool = Field(True, description="batch samples of similar token length to keep padding low")
    freeze_vision: bool = False
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target: str | None = None
    mix: list[DataSpec] = Field(default_factory=list, description="extra datasets mixed into training")
    seed: int = 42
    num_workers: int = Field(2, ge=0)
    logging_steps: int = Field(10, ge=1)
    save: bool = Field(True, description="save the final model and processor to output_dir/final")
    optim: str = "adamw_torch_fused"
    min_pixels: int | None = Field(None, ge=1, description="image floor for pixel-range processors (Qwen2-VL)")
    max_pixels: int | None = Field(602112, ge=1, description="image cap for pixel-range processors: 768 tokens")
    max_length: int | None = Field(None, ge=8, description="drop training rows longer than this (counted, never "
                                                           "cut: image tokens stay whole)")
    save_steps: int = Field(0, ge=0, description="checkpoint every N optimizer steps (0: none)")
    save_total_limit: int = Field(2, ge=1)
    resume: bool = Field(False, description="resume from the last checkpoint in output_dir")
    report_to: str = Field("none", description="transformers integrations: none, tensorboard, wandb, ...")
    liger: bool = Field(False, description="patch the model with Liger kernels (liger-kernel installed)")
    attn_implementation: str = "sdpa"

    @model_validator(mode="after")
    def _batch_divides(self):
        if self.batch_size % self.per_device_batch_size:
            raise ValueError(f"batch_size {self.batch_size} is not a multiple of per_device_batch_size "
                             f"{self.per_device_batch_size}; pick sizes that divide")
        return self


# The paper's settings (Cai et al. 2025, section 4): LLaVA-1.5 5 epochs, lr 5e-6, batch 32; Qwen2-VL and
# Llama-3.2-Vision lr 2e-6 (the paper states only the learning rate for these two; epochs and batch follow LLaVA).
PRESETS: dict[str, dict] = {
    "llava-1.5": {"epochs": 5, "learning_rate": 5e-6, "batch_size": 32, "method": "full"},
    "qwen2-vl": {"epochs": 5, "learning_rate": 2e-6, "batch_size": 32, "method": "full"},
    "llama-3.2-vision": {"epochs": 5, "learning_rate": 2e-6, "batch_size": 32, "method": "full"},
}


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Mode = "choice"
    batch_size: int = Field(8, ge=1)
    max_new_tokens: int | None = Field(None, ge=1, description="default: 8 for choice, 64 for open answers")
    precision: Precision = "auto"
    scoring: Scoring = Field("generate", description="generate: greedy reply, option read from the text; logits: "
                                                     "the option letter with the highest next-token logit")
    min_pixels: int | None = Field(None, ge=1)
    max_pixels: int | None = Field(602112, ge=1)
