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
    try:
        image_processor = AutoImageProcessor.from_pretrained(path)
    except ImportError:  # transformers <= 5.1x: the auto class wants torchvision; the PIL class does not
        kind = json.loads((Path(path) / "preprocessor_config.json").read_text()).get("image_processor_type", "")
        pil = getattr(transformers, kind.removesuffix("Fast") + "Pil", None)
        if pil is None:
            raise
        image_processor = pil.from_pretrained(path)
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


# Image-token budget for processors that resize to a pixel range (Qwen2-VL): at most 768 tokens of 28 x 28 px
# (about 776 x 776 px). The checkpoints ship max_pixels 12,845,056 (16,384 tokens): a fundus photo becomes 8,740
# tokens and a mammogram 12,600 (issue 13). LLaMA-Factory's default cap is 768 x 768 px
# (`ProcessorArguments.image_max_pixels`, hiyouga/LLaMA-Factory src/llamafactory/hparams/model_args.py).
DEFAULT_MAX_PIXELS = 768 * 28 * 28

# Bytes per parameter that training keeps on the GPUs, activations aside (the basis of `auto_precision` and of the
# table in docs/training.md): fp32 master weights 4 + fp32 gradients 4 + AdamW's two fp32 moments 8 = 16; bf16
# weights 2 + bf16 gradients 2 + two bf16 moments 4 + the bf16 Kahan compensation 2 = 10 (torch-optimi keeps its
# state in the parameters' dtype); pure bf16 8. Autocast also caches a bf16 copy of each weight during the
# forward pass (+2, unsharded only: FSDP casts one layer at a time).
STATE_BYTES = {"bf16": 16, "fp16": 16, "fp32": 16, "bf16-kahan": 10, "bf16-pure": 8}
AUTOCAST_COPY_BYTES = 2
# Share of each GPU the state may take; the rest is activations (gradient checkpointing on), the CUDA context and
# the allocator's slack.
STATE_SHARE = 0.8


def pick_dtype(precision: str) -> torch.dtype:
    """The dtype the *weights* are kept in for `precision` (autocast modes keep fp32 master weights)."""
    dtypes = {"bf16": torch.float32, "fp16": torch.float32, "fp32": torch.float32, "bf16-kahan": torch.bfloat16,
              "bf16-pure": torch.bfloat16}
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if precision not in dtypes:
        raise ModelError(f"unknown precision {precision!r}; choose auto, bf16, bf16-kahan, fp16 or fp32")
    return dtypes[precision]


def inference_dtype(precision: str) -> torch.dtype:
    """The dtype to evaluate in: bf16 on GPUs that have it (unless fp32 is asked for), else fp32."""
    if precision == "fp32" or not torch.cuda.is_available():
        return torch.float32
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def kahan_available() -> bool:
    try:
        import optimi  # noqa: F401
    except ImportError:
        return False
    return True


def training_state_gib(n_params: int, precision: str, shards: int = 1) -> float:
    """GiB of weights, gradients and optimizer state per GPU (`shards` GPUs under FSDP full sharding)."""
    per_param = STATE_BYTES[precision] / shards
    if precision in ("bf16", "fp16") and shards == 1:
        per_param += AUTOCAST_COPY_BYTES
    return n_params * per_param / 2 ** 30


def auto_precision(n_params: int, gpu_bytes: int | None, shards: int = 1, kahan: bool | None = None) -> str:
    """Training precision for "auto": fp32 master weights with bf16 autocast ("bf16") when their state fits in
    STATE_SHARE of each GPU, else bf16 weights with Kahan-compensated AdamW ("bf16-kahan", 10 bytes per parameter)
    when torch-optimi is installed; "fp32" without a GPU. On one 141 GB H200 that is "bf16" up to about 6B
    parameters and "bf16-kahan" for the paper's 7B-11B models; FSDP over 8 GPUs gives "bf16" for all of them."""
    if gpu_bytes is None:
        return "fp32"
    limit = STATE_SHARE * gpu_bytes / 2 ** 30
    if training_state_gib(n_params, "bf16", shards) <= limit:
        return "bf16"
    if kahan if kahan is not None else kahan_available():
        if training_state_gib(n_params, "bf16-kahan", shards) <= limit:
            return "bf16-kahan"
    raise ModelError(f"{n_params / 1e9:.1f}B parameters need {training_state_gib(n_params, 'bf16', shards):.0f} GiB "
                     f"per GPU with fp32 master weights and {training_state_gib(n_params, 'bf16-kahan', shards):.0f} "
                     f"GiB with --precision bf16-kahan (torch-optimi), more than {STATE_SHARE:.0%} of "
                     f"{gpu_bytes / 2 ** 30:.0f} GiB; install torch-optimi, shard over more GPUs with FSDP, or use "
                     "--method lora")


def resolve_precision(precision: str, n_params: int) -> str:
    """`precision` with "auto" decided for this machine (see `auto_precision`)."""
    if precision != "auto":
        return precision
    if not torch.cuda.is_available():
        return "fp32"
    import os

    shards = int(os.environ.get("WORLD_SIZE", "1")) if os.environ.get("ACCELERATE_USE_FSDP") == "true" else 1
    return auto_precision(n_params, torch.cuda.get_device_properties(0).total_memory, shards)


def accelerator_device() -> torch.device:
    """This process's GPU (LOCAL_RANK under torchrun / accelerate), else the CPU."""
    import os

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def load_model(path: str | Path, dtype: torch.dtype | None = None, attn_implementation: str | None = "sdpa",
               device: str | torch.device | None = None):
    """Any `AutoModelForImageTextToText` checkpoint from a local folder or a Hub id, on `device` when given
    ("auto": this process's GPU when there is one)."""
    from transformers import AutoModelForImageTextToText

    kwargs = {"dtype": dtype} if dtype is not None else {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not an image-text-to-text checkpoint that transformers can load ({exc}); "
                         "pass a folder with config.json and weights, or a Hub id such as "
                         "Qwen/Qwen2-VL-2B-Instruct") from exc
    if device is not None:
        model = model.to(accelerator_device() if device == "auto" else device)
    return model


def apply_image_budget(processor, min_pixels: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS):
    """Cap (and floor) the pixels per image for processors that resize into a pixel range (Qwen2-VL).

    `max_pixels` lowers the processor's own maximum, never raises it past what was asked; `min_pixels` sets the
    floor. Returns the (min, max) now in force, or None for processors with a fixed image size (LLaVA-1.5: 336 px,
    576 tokens; Mllama: up to 4 tiles of 560 px), which need no budget.
    """
    image = getattr(processor, "image_processor", None)
    size = getattr(image, "size", None)
    try:
        low, high = size["shortest_edge"], size["longest_edge"]
    except (TypeError, KeyError):
        return None
    if low is None or high is None or not hasattr(image, "merge_size"):
        return None
    high = min(high, max_pixels) if max_pixels else high
    low = min_pixels if min_pixels is not None else min(low, high)
    if low > high:
        raise ModelError(f"--min-pixels {low} is above --max-pixels {high}")
    try:  # keep the processor's own type (transformers 5.x: SizeDict)
        image.size = type(size)(shortest_edge=int(low), longest_edge=int(high))
    except TypeError:
        image.size = {"shortest_edge": int(low), "longest_edge": int(high)}
    for name, value in (("min_pixels", low), ("max_pixels", high)):
        if hasattr(image, name):
            setattr(image, name, int(value))
    return int(low), int(high)


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


# The vision-language projector sits inside the vision module in Qwen2-VL (`visual.merger`); it stays trainable.
_PROJECTOR_PARTS = ("visual.merger.", "multi_modal_projector.", "mm_projector.")


def freeze_vision(model) -> int:
    """Freeze the vision tower (parameters under visual/vision_tower/vision_model), but not the projector that
    maps it into the language model (Qwen2-VL's `visual.merger` included); returns how many were frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if any(part in name for part in _PROJECTOR_PARTS):
            continue
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
