"""MAT rows -> chat messages -> model inputs, through the model's own processor and chat template.

Training inputs are the processor's encoding of the *generation prompt* (exactly what the model sees at test
time) followed by the tokens the chat template puts after it for the assistant's turn (the answer and the
end-of-turn marker). Labels are -100 over the prompt and padding, so the loss covers only the answer tokens.
"""

from __future__ import annotations

import torch
from PIL import Image

from .config import Mode
from .data import FIELDS

IGNORE = -100


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


class ChatCollator:
    """Collate MAT rows into a padded batch for training (`train=True`) or generation (`train=False`)."""

    def __init__(self, processor, mode: Mode = "choice", train: bool = True, image_token_ids: tuple[int, ...] = (),
                 add_mm_token_type_ids: bool = False):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.mode = mode
        self.train = train
        # Models whose forward needs `mm_token_type_ids` (Qwen2-VL in transformers 5.x) get them even from a
        # processor that does not return them: 1 on image tokens, 2 on video tokens, 0 elsewhere.
        self.add_mm_token_type_ids = add_mm_token_type_ids
        self.image_token_ids = image_token_ids
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.tokenizer.eos_token_id
        if self.pad_id is None:
            raise TemplateError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")

    def prompt_and_suffix(self, row: dict) -> tuple[str, str]:
        user, answer = messages(row, self.mode)
        prompt = self.processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        if not self.train:
            return prompt, ""
        full = self.processor.apply_chat_template(
            user + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}], tokenize=False)
        if not full.startswith(prompt):
            raise TemplateError("the chat template's rendering of the conversation does not start with its "
                                f"generation prompt, so the answer cannot be located:\n{prompt!r}\n{full!r}")
        suffix = full[len(prompt):]
        if answer not in suffix:
            raise TemplateError(f"the assistant turn {suffix!r} does not contain the answer {answer!r}")
        return prompt, suffix

    def encode(self, row: dict) -> dict:
        prompt, suffix = self.prompt_and_suffix(row)
        enc = self.processor(text=[prompt], images=[_rgb(row["image"])], return_tensors="pt")
        enc = {k: v for k, v in enc.items()}
        ids = enc["input_ids"][0]
        per_token = {k: v[0] for k, v in enc.items() if torch.is_tensor(v) and v.shape == enc["input_ids"].shape}
        if self.add_mm_token_type_ids and "mm_token_type_ids" not in per_token:
            kinds = torch.zeros_like(ids)
            for kind, token_id in enumerate(self.image_token_ids, start=1):
                kinds[ids == token_id] = kind
            per_token["mm_token_type_ids"] = kinds
        labels = torch.full_like(ids, IGNORE)
        if suffix:
            answer = torch.tensor(self.tokenizer(suffix, add_special_tokens=False)["input_ids"], dtype=ids.dtype)
            for key, value in per_token.items():
                fill = answer if key == "input_ids" else torch.full_like(answer, 1 if key == "attention_mask" else 0)
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
                pad = torch.full((width - len(value),), fill, dtype=value.dtype)
                # Right padding to train; left padding to generate, so every prompt ends at the last column.
                rows_out.append(torch.cat([value, pad]) if self.train else torch.cat([pad, value]))
            batch[key] = torch.stack(rows_out)
        for key in encoded[0]["images"]:
            batch[key] = torch.cat([e["images"][key] for e in encoded])
        if not self.train:
            batch.pop("labels")
        return batch


def collator_for(model, processor, mode: Mode = "choice", train: bool = True) -> ChatCollator:
    """A collator matched to `model`: `mm_token_type_ids` when its forward takes them."""
    from .model import needs_mm_token_type_ids

    config = getattr(model, "config", None)
    ids = tuple(getattr(config, name, None) for name in ("image_token_id", "video_token_id"))
    return ChatCollator(processor, mode, train=train, image_token_ids=tuple(i for i in ids if i is not None),
                        add_mm_token_type_ids=needs_mm_token_type_ids(model))
