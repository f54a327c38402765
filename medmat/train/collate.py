"""MAT rows -> chat messages -> model inputs, through the model's own processor and chat template.

Training inputs are the processor's encoding of the *generation prompt* (exactly what the model sees at test
time) followed by the tokens the chat template puts after it for the assistant's turn: the answer and the
end-of-turn token. Labels are -100 over the prompt and padding, so the loss covers only the answer tokens.

The end token: the labels always end with one, so the model learns to stop. Templates that close the assistant
turn with the tokenizer's end token (Qwen2-VL `<|im_end|>`, Llama-3.2-Vision `<|eot_id|>`) keep theirs and
whatever they render after it (`\\n`) is dropped; templates that put none (llava-hf/llava-1.5's renders
`ASSISTANT: B ` and stops) get the tokenizer's eos token (`</s>`) appended.

Per-token tensors are those whose first two dimensions are (batch, sequence): `input_ids`, `attention_mask`,
`mm_token_type_ids`, and Mllama's `cross_attention_mask` (batch, sequence, images, tiles), which is padded along
the sequence and extended over the answer with the prompt's last row (answer tokens see the image as the prompt's
last token does). Everything else the processor returns is per image and concatenated.
"""

from __future__ import annotations

import torch
from PIL import Image

from .config import Mode
from .data import FIELDS

IGNORE = -100
# Per-token tensors whose answer positions copy the prompt's last position instead of a constant.
_CARRY_LAST = ("cross_attention_mask",)


class TemplateError(ValueError):
    """The chat template renders the assistant turn in a way answer masking cannot follow."""


def messages(row: dict, mode: Mode) -> tuple[list[dict], str]:
    """(user turn with the image and the question, the answer text) for one MAT row."""
    question, answer = FIELDS[mode]
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": row[question]}]}]
    return user, str(row[answer])


def _rgb(image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a decoded PIL image, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")


def _end_ids(tokenizer, extra=()) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    for value in extra:
        ids.update(value if isinstance(value, (list, tuple, set)) else [value])
    return {i for i in ids if i is not None}


class ChatCollator:
    """Collate MAT rows into a padded batch for training (`train=True`) or generation (`train=False`)."""

    def __init__(self, processor, mode: Mode = "choice", train: bool = True, image_token_ids: tuple[int, ...] = (),
                 add_mm_token_type_ids: bool = False, end_token_ids=()):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.mode = mode
        self.train = train
        # Models whose forward needs `mm_token_type_ids` (Qwen2-VL in transformers 5.x) get them even from a
        # processor that does not return them: 1 on image tokens, 2 on video tokens, 0 elsewhere.
        self.add_mm_token_type_ids = add_mm_token_type_ids
        self.image_token_ids = image_token_ids
        self.end_ids = _end_ids(self.tokenizer, end_token_ids)
        if self.tokenizer.eos_token_id is None:
            raise TemplateError("the tokenizer has no eos token, so the answer cannot end with one; set "
                                "tokenizer.eos_token")
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id
        self._letter_ids: dict[str, int] = {}

    def prompt_and_suffix(self, row: dict) -> tuple[str, str]:
        user, answer = messages(row, self.mode)
        prompt = self.processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        if not self.train:
            return prompt, ""
        return prompt, self.suffix(user, prompt, answer)

    def suffix(self, user: list[dict], prompt: str, answer: str) -> str:
        """The text the template puts after the generation prompt for an assistant turn holding `answer`."""
        full = self.processor.apply_chat_template(
            user + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}], tokenize=False)
        if not full.startswith(prompt):
            raise TemplateError("the chat template's rendering of the conversation does not start with its "
                                f"generation prompt, so the answer cannot be located:\n{prompt!r}\n{full!r}")
        suffix = full[len(prompt):]
        if answer not in suffix:
            raise TemplateError(f"the assistant turn {suffix!r} does not contain the answer {answer!r}")
        return suffix

    def answer_ids(self, suffix: str) -> list[int]:
        """Token ids of the assistant turn, cut after its first end token, or with the eos token appended."""
        ids = self.tokenizer(suffix, add_special_tokens=False)["input_ids"]
        for i, token in enumerate(ids):
            if token in self.end_ids:
                return ids[: i + 1]
        # No end token in the turn (llava-1.5): the trailing space the template adds goes, the eos token comes.
        return self.tokenizer(suffix.rstrip(), add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]

    def letter_token_ids(self, letters: str) -> list[int]:
        """The first answer token of each option letter, as training puts it after the generation prompt."""
        missing = [letter for letter in letters if letter not in self._letter_ids]
        if missing:
            user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}]
            prompt = self.processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
            for letter in missing:
                ids = self.answer_ids(self.suffix(user, prompt, letter))
                self._letter_ids[letter] = ids[0]
        ids = [self._letter_ids[letter] for letter in letters]
        if len(set(ids)) != len(ids):
            raise TemplateError(f"option letters {letters} do not start with distinct tokens ({ids}); use "
                                "generation scoring (--scoring generate)")
        return ids

    def encode(self, row: dict) -> dict:
        prompt, suffix = self.prompt_and_suffix(row)
        enc = self.processor(text=[prompt], images=[_rgb(row["image"])], return_tensors="pt")
        enc = {k: v for k, v in enc.items()}
        ids = enc["input_ids"][0]
        seq = enc["input_ids"].shape
        per_token = {k: v[0] for k, v in enc.items() if torch.is_tensor(v) and v.dim() >= 2 and v.shape[:2] == seq}
        if self.add_mm_token_type_ids and "mm_token_type_ids" not in per_token:
            kinds = torch.zeros_like(ids)
            for kind, token_id in enumerate(self.image_token_ids, start=1):
                kinds[ids == token_id] = kind
            per_token["mm_token_type_ids"] = kinds
        labels = torch.full_like(ids, IGNORE)
        if suffix:
            answer = torch.tensor(self.answer_ids(suffix), dtype=ids.dtype)
            n = len(answer)
            for key, value in per_token.items():
                if key == "input_ids":
                    fill = answer
                elif key in _CARRY_LAST:
                    fill = value[-1:].expand(n, *value.shape[1:])
                else:
                    fill = torch.full((n, *value.shape[1:]), 1 if key == "attention_mask" else 0)
                per_token[key] = torch.cat([value, fill.to(value.dtype)])
            labels = torch.cat([labels, answer])
        per_token["labels"] = labels
        images = {k: v for k, v in enc.items() if k not in per_token and torch.is_tensor(v)}
        return {"tokens": per_token, "images": images}

    def __call__(self, rows: list[dict]) -> dict:
        encoded = [self.encode(row) for row in rows]
        width = max(len(e["tokens"]["input_ids"]) for e in encoded)
        batch: dict[str, torch.Tensor] = {}
        for key in encoded[0]["tokens"]:
            fill = {"input_ids": self.pad_id, "labels": IGNORE}.get(key, 0)
            rows_out = []
            for e in encoded:
                value = e["tokens"][key]
                pad = torch.full((width - len(value), *value.shape[1:]), fill, dtype=value.dtype)
                # Right padding to train; left padding to generate, so every prompt ends at the last column.
                rows_out.append(torch.cat([value, pad]) if self.train else torch.cat([pad, value]))
            batch[key] = torch.stack(rows_out)
        for key in encoded[0]["images"]:
            batch[key] = torch.cat([e["images"][key] for e in encoded])
        if not self.train:
            batch.pop("labels")
        return batch


def collator_for(model, processor, mode: Mode = "choice", train: bool = True) -> ChatCollator:
    """A collator matched to `model`: `mm_token_type_ids` when its forward takes them, its end tokens."""
    from .model import needs_mm_token_type_ids

    config = getattr(model, "config", None)
    ids = tuple(getattr(config, name, None) for name in ("image_token_id", "video_token_id"))
    generation = getattr(model, "generation_config", None)
    ends = [getattr(generation, "eos_token_id", None)]
    return ChatCollator(processor, mode, train=train, image_token_ids=tuple(i for i in ids if i is not None),
                        add_mm_token_type_ids=needs_mm_token_type_ids(model), end_token_ids=ends)
