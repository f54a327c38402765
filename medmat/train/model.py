"""Load any image-text-to-text checkpoint and its processor, and prepare it for full fine-tuning or LoRA."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch

# Language-model projections of the common VLM families (Qwen2-VL, LLaVA/Llama, Mllama); the vision tower is left
# to full fine-tuning or frozen, as in the paper's LoRA-free setup.
DEFAULT_LORA_TARGET = r".*(language_model|model\.layers).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


class ModelError(RuntimeError):
    """A checkpoint that cannot be loaded or prepared; the message names the path and the fix."""


def load_processor(path: str | Path):
    """`AutoProcessor.from_pretrained(path)`; without torchvision (CPU installs), an image-only processor instead.

    transformers 5.x builds a video processor for Qwen2-VL-style processors and that needs torchvision; images
    need only the PIL backend, so the processor is assembled from its image processor and tokenizer.
    """
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(path)
    except (ImportError, OSError) as exc:
        # No torchvision, or a folder saved from such an image-only processor (no video processor config).
        if "orchvision" not in str(exc) and "video processor" not in str(exc):
            raise
    import transformers

    config = Path(path) / "processor_config.json"
    name = json.loads(config.read_text()).get("processor_class") if config.exists() else None
    base = getattr(transformers, name or "", None)
    if base is None:
        raise ModelError(f"{path}: cannot build a processor without torchvision (processor_class {name!r}); "
                         "install torchvision matching your torch")
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = AutoImageProcessor.from_pretrained(path)
    extra = {k: v for k, v in json.loads(config.read_text()).items() if k != "processor_class"}
    template = tokenizer.chat_template
    template_file = Path(path) / "chat_template.jinja"
    if template is None and template_file.exists():
        template = template_file.read_text()

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # ProcessorMixin takes its sub-processors from this signature, so the video processor is left out.
        params = inspect.signature(base.__init__).parameters
        if "video_processor" in params:
            base.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)
            self.video_processor = None
        else:
            base.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    image_only = type(base.__name__, (base,), {"__init__": __init__, "__module__": base.__module__})
    accepted = inspect.signature(base.__init__).parameters
    parts = {"image_processor", "tokenizer", "video_processor", "chat_template"}  # 5.x nests them in the file
    kwargs = {k: v for k, v in extra.items() if k in accepted and k not in parts}
    return image_only(image_processor=image_processor, tokenizer=tokenizer, chat_template=template, **kwargs)


def pick_dtype(precision: str) -> torch.dtype:
    """bf16 where the device supports it ("auto"), else fp32; explicit choices are honoured or refused."""
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if precision not in dtypes:
        raise ModelError(f"unknown precision {precision!r}; choose auto, bf16, fp16 or fp32")
    return dtypes[precision]


def load_model(path: str | Path, dtype: torch.dtype | None = None, attn_implementation: str | None = "sdpa"):
    """Any `AutoModelForImageTextToText` checkpoint from a local folder or a Hub id."""
    from transformers import AutoModelForImageTextToText

    kwargs = {"dtype": dtype} if dtype is not None else {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        return AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not an image-text-to-text checkpoint that transformers can load ({exc}); "
                         "pass a folder with config.json and weights, or a Hub id such as "
                         "Qwen/Qwen2-VL-2B-Instruct") from exc


def apply_lora(model, r: int = 16, alpha: int = 32, dropout: float = 0.05, target: str | list[str] | None = None):
    """Wrap `model` with LoRA adapters (peft) on the language model's projections; returns the peft model."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target or DEFAULT_LORA_TARGET,
                        task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ModelError(f"LoRA target {config.target_modules!r} matched no module of {type(model).__name__} "
                         f"({exc}); pass --lora-target with a regex over the model's module names") from exc


def freeze_vision(model) -> int:
    """Freeze the vision tower (parameters under visual/vision_tower/vision_model); returns how many were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if any(part in name for part in ("visual.", "vision_tower.", "vision_model.")):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def needs_mm_token_type_ids(model) -> bool:
    """Qwen2-VL-style models in transformers 5.x need `mm_token_type_ids` for M-RoPE when given images."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper takes **kwargs
    forward = getattr(base, "forward", None)
    try:
        return "mm_token_type_ids" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return False
