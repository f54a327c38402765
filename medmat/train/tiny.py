"""Randomly initialised image-text-to-text models with a locally built tokenizer and processor.

Used by the tests (tiny), by `bench/gpu_train.py` (a ~2B model of the Qwen2-VL architecture) and by anyone who
wants to try `medmat train` / `medmat cg run` without downloading weights. Nothing here touches the network: the
tokenizer is a byte-level BPE trained in memory on a small corpus, wrapped in `PreTrainedTokenizerFast` with the
family's special tokens and a chat template shaped like the real checkpoint's.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..mat.qa_format import ANSWER_INSTRUCTION, DEFAULT_FORMAT, format_question_choice

FAMILIES = ("qwen2_vl", "llava", "mllama")

# The released checkpoints' chat templates for LLaVA-1.5 (llava-hf/llava-1.5-7b-hf, chat_template.json) and
# Qwen2-VL-Instruct, verbatim (sources in tests/fixtures/chat_templates/README.md). LLaVA-1.5's puts no `</s>` after
# the assistant turn; the collator adds the end token (a hand-written template that added `</s>` hid that).
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_SPECIAL = {
    "qwen2_vl": ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"],
    "llava": ["<unk>", "<s>", "</s>", "<pad>", "<image>"],
    "mllama": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
               "<|finetune_right_pad_id|>", "<|python_tag|>", "<|image|>"],
}
# Llama-3.2-Vision's turn layout (the real template is in tests/fixtures/chat_templates/).
MLLAMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<|image|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
TEMPLATES = {"qwen2_vl": QWEN2_VL_TEMPLATE, "llava": LLAVA_TEMPLATE, "mllama": MLLAMA_TEMPLATE}

# Words the tokenizer is trained on: the upstream answer instruction, option letters and medical label words, so
# that questions and answers tokenize to a few tokens each instead of one per byte.
_CORPUS = [
    ANSWER_INSTRUCTION,
    "A: B: C: D: A B C D (A) (B) Answer: The answer is",
    "Review this kidney CT scan and determine the possible condition it represents.",
    "Please examine this X-ray image of a bone and rate the severity of arthritis from 0 to 4.",
    "Please assess this fundus image and list all conditions present, using commas to separate them.",
    "If no conditions are detected, return 'Normal'. Normal Stone Cyst Tumor Cancer Benign Malignant",
    "What does this image show? Which condition is visible in this dermoscopy microscopy ultrasound MRI OCT photo?",
    "USER: ASSISTANT: user assistant system",
    "0 1 2 3 4 5 6 7 8 9 lung brain skin cell retina breast bones chest thyroid liver cervix mouth intestine",
]


def build_tokenizer(family: str, extra_corpus: list[str] | None = None, vocab_size: int = 600,
                    chat_template: str | None = None):
    """A byte-level BPE tokenizer with `family`'s special tokens and chat template (or `chat_template`)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    _check_family(family)
    special = _SPECIAL[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS + list(extra_corpus or []), trainer=trainer)
    if family == "qwen2_vl":
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    elif family == "mllama":  # the real tokenizer: eos <|eot_id|>, pad <|finetune_right_pad_id|>
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                       pad_token="<|finetune_right_pad_id|>")
    else:
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                       pad_token="<pad>")
    fast.chat_template = chat_template or TEMPLATES[family]
    return fast


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")


def _qwen2_vl_config(tokenizer, size: str):
    from transformers import Qwen2VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _SPECIAL["qwen2_vl"]}
    if size == "2b":  # the Qwen2-VL-2B shapes: ~2.2B parameters (1.5B language model, 0.67B vision tower)
        text = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                    num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]})
        vision = dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)
        tie = True
    else:
        text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]})
        vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)
        tie = False
    text.update(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                         video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                         vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=tie)


def _llava_config(tokenizer):
    from transformers import LlavaConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _SPECIAL["llava"]}
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=28, patch_size=14, projection_dim=32)
    text = dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=ids["<image>"],
                       image_seq_length=4, vision_feature_layer=-1, vision_feature_select_strategy="full")


def _mllama_config(tokenizer):
    from transformers import MllamaConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _SPECIAL["mllama"]}
    # Tiles of 28 px (2 x 2 patches of 14), at most 2 tiles per image; one cross-attention layer of two.
    vision = dict(hidden_size=32, num_hidden_layers=2, num_global_layers=1, attention_heads=2, intermediate_size=64,
                  vision_output_dim=64, image_size=28, patch_size=14, max_num_tiles=2,
                  intermediate_layers_indices=[0], supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]])
    text = dict(vocab_size=len(tokenizer) + 8, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, cross_attention_layers=[1],
                bos_token_id=ids["<|begin_of_text|>"], eos_token_id=ids["<|eot_id|>"],
                pad_token_id=ids["<|finetune_right_pad_id|>"],
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    return MllamaConfig(vision_config=vision, text_config=text, image_token_index=ids["<|image|>"])


def _write_processor_files(family: str, folder: Path, size: str) -> None:
    if family == "mllama":
        image = {"image_processor_type": "MllamaImageProcessor", "processor_class": "MllamaProcessor",
                 "size": {"height": 28, "width": 28}, "max_image_tiles": 2, "do_resize": True, "do_rescale": True,
                 "do_normalize": True, "do_pad": True, "do_convert_rgb": True,
                 "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
        proc = {"processor_class": "MllamaProcessor"}
    elif family == "qwen2_vl":
        pixels = 448 * 448 if size == "2b" else 56 * 56
        image = {"image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
                 "min_pixels": pixels, "max_pixels": pixels, "patch_size": 14, "temporal_patch_size": 2,
                 "merge_size": 2, "do_resize": True, "do_rescale": True, "do_normalize": True,
                 "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
        proc = {"processor_class": "Qwen2VLProcessor"}
    else:
        image = {"image_processor_type": "CLIPImageProcessor", "processor_class": "LlavaProcessor",
                 "size": {"shortest_edge": 28}, "crop_size": {"height": 28, "width": 28}, "do_center_crop": True,
                 "do_resize": True, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True,
                 "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
        # vision_feature_select_strategy "full" keeps the CLS token: (28/14)^2 + 1 = 5 image tokens.
        proc = {"processor_class": "LlavaProcessor", "patch_size": 14, "vision_feature_select_strategy": "full",
                "num_additional_image_tokens": 1, "image_token": "<image>"}
    (folder / "preprocessor_config.json").write_text(json.dumps(image, indent=2))
    (folder / "processor_config.json").write_text(json.dumps(proc, indent=2))


def build_random_model(family: str, out_dir: str | Path | None = None, size: str = "tiny", seed: int = 0,
                       extra_corpus: list[str] | None = None, dtype=None, chat_template: str | None = None):
    """A randomly initialised `family` model and its processor; saved to `out_dir` when given.

    `size` is "tiny" (a few hundred thousand parameters, 56 px images: CPU tests) or, for qwen2_vl, "2b" (the
    Qwen2-VL-2B shapes and 448 px images: the GPU benchmark). Returns (model, processor).
    """
    import torch
    from transformers import AutoModelForImageTextToText

    from .model import load_processor

    _check_family(family)
    if size not in ("tiny", "2b") or (size == "2b" and family != "qwen2_vl"):
        raise ValueError(f"size {size!r} is not available for {family}; use 'tiny' (or '2b' for qwen2_vl)")
    tokenizer = build_tokenizer(family, extra_corpus, chat_template=chat_template)
    config = (_qwen2_vl_config(tokenizer, size) if family == "qwen2_vl" else
              _mllama_config(tokenizer) if family == "mllama" else _llava_config(tokenizer))
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=dtype) if dtype else \
        AutoModelForImageTextToText.from_config(config)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out_dir) if out_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(folder)
        _write_processor_files(family, folder, size)
        (folder / "chat_template.jinja").write_text(tokenizer.chat_template)
        processor = load_processor(folder)
        if out_dir is not None:
            processor.save_pretrained(folder)
            model.save_pretrained(folder)
    return model, processor


TINY_LABELS = ("Stone", "Cyst", "Normal", "Tumor")
INSTRUCTION = ANSWER_INSTRUCTION


def synthetic_rows(n: int = 8, image_size: int = 32, seed: int = 0, subset: str = "02",
                   labels: tuple[str, ...] = TINY_LABELS):
    """`n` MAT rows (a `datasets.Dataset` with MAT_FEATURES): seeded noise images and upstream-format QA.

    The answer's letter moves around the options, so a model can only score 100 % by reading the question.
    """
    import datasets
    import numpy as np
    from PIL import Image

    from ..mat.schema import MAT_FEATURES

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        options = list(labels)
        rng.shuffle(options)
        question = f"Review this kidney CT scan ({subset}-{i}) and determine the possible condition it represents."
        choice = format_question_choice(question, options)
        image = Image.fromarray((rng.random((image_size, image_size, 3)) * 255).astype("uint8"))
        row = {name: None for name in MAT_FEATURES}
        row.update(id=f"synthetic-{subset}/{i}", source_id="synthetic", subset=subset, image=image, labels=[label],
                   source_labels=[label], boxes=[], spacing=[], split="train", width=image_size, height=image_size,
                   question=question, answer=label, options=options, question_choice=choice,
                   answer_choice=DEFAULT_FORMAT.letters[options.index(label)])
        rows.append(row)
    return datasets.Dataset.from_list(rows, features=MAT_FEATURES)
