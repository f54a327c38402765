"""Answer a test split and score it: option-letter accuracy per subset and per label, with counts.

Two ways to answer, side by side (`scoring`):
- "generate": greedy generation in batches (8 new tokens in choice mode), the option read out of the reply text by
  `extract.extract_choice`; a reply naming no option is unparsed and wrong. What the paper's evaluation does.
- "logits": one forward pass over the generation prompt and, at its last position, the option letter whose first
  answer token (as training writes it after the prompt: "B", " B") has the highest logit among the row's options.
  No generation, never unparsed; choice mode only.

Both run on the model's device in batches, the rows ordered by image size so a batch pads little. `score` is pure
Python over (row, reply) pairs so saved predictions can be rescored. Every percentage comes with its counts.
"""

from __future__ import annotations

from collections import defaultdict

from .config import Mode
from .extract import extract_choice, open_answer_correct, options_from_question

NO_FINDING = "(no finding)"


def _order(ds) -> list[int]:
    """Row indices sorted by stored image area (then index), so that a batch holds images of similar token counts."""
    if not {"width", "height"} <= set(ds.column_names):
        return list(range(len(ds)))
    areas = [(w or 0) * (h or 0) for w, h in zip(ds["width"], ds["height"])]
    return sorted(range(len(ds)), key=lambda i: (areas[i], i))


def _batches(model, ds, batch_size: int, collator, progress: bool):
    """(row indices, rows, batch on the model's device) in image-size order."""
    import torch
    from tqdm import tqdm

    device = next(model.parameters()).device
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    order = _order(ds)
    for start in tqdm(range(0, len(order), batch_size), disable=not progress, desc="eval", unit="batch"):
        indices = order[start:start + batch_size]
        rows = [ds[i] for i in indices]
        batch = collator(rows)
        yield indices, rows, {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device))
                              for k, v in batch.items()}


def predict(model, processor, ds, mode: Mode = "choice", batch_size: int = 8, max_new_tokens: int | None = None,
            collator=None, progress: bool = False, scoring: str = "generate") -> list[str]:
    """`model`'s reply for every row of `ds`, in row order: generated text, or the letter the logits pick."""
    import torch

    from .collate import collator_for

    if scoring not in ("generate", "logits"):
        raise ValueError(f"unknown scoring {scoring!r}; choose generate or logits")
    if scoring == "logits" and mode != "choice":
        raise ValueError("letter-logit scoring needs --mode choice (open answers are generated)")
    collator = collator or collator_for(model, processor, mode, train=False)
    max_new_tokens = max_new_tokens or (8 if mode == "choice" else 64)
    tokenizer = getattr(processor, "tokenizer", processor)
    was_training = model.training
    model.eval()
    replies: list[str | None] = [None] * len(ds)
    try:
        for indices, rows, batch in _batches(model, ds, batch_size, collator, progress):
            with torch.inference_mode():
                if scoring == "logits":
                    got = _letters_from_logits(model, batch, rows, collator)
                else:
                    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                         pad_token_id=collator.pad_id)
                    got = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            for i, reply in zip(indices, got):
                replies[i] = reply.strip()
    finally:
        model.train(was_training)
    return replies


def _letters_from_logits(model, batch: dict, rows: list[dict], collator) -> list[str]:
    """The option letter with the highest next-token logit after each (left-padded) prompt."""
    import inspect

    from .extract import LETTERS

    counts = [len(list(row.get("options") or []) or options_from_question(row.get("question_choice") or "")) or 4
              for row in rows]
    letter_ids = collator.letter_token_ids(LETTERS[: max(counts)])
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(base.forward).parameters else {}
    logits = model(**batch, use_cache=False, **keep).logits[:, -1, :].float()
    picked = []
    for row_logits, n in zip(logits, counts):
        scores = row_logits[letter_ids[:n]]
        picked.append(LETTERS[int(scores.argmax())])
    return picked


def _bucket() -> dict:
    return {"correct": 0, "total": 0}


def _finish(counts: dict) -> dict:
    return {**counts, "accuracy": round(100.0 * counts["correct"] / counts["total"], 2) if counts["total"] else None}


def score(rows: list[dict], replies: list[str], mode: Mode = "choice") -> dict:
    """Accuracy overall, per subset and per label (each with correct/total), and one record per sample."""
    if len(rows) != len(replies):
        raise ValueError(f"{len(rows)} rows but {len(replies)} replies")
    overall, unparsed = _bucket(), 0
    per_subset: dict[str, dict] = defaultdict(_bucket)
    per_label: dict[str, dict] = defaultdict(_bucket)
    records = []
    for row, reply in zip(rows, replies):
        if mode == "choice":
            options = list(row.get("options") or []) or options_from_question(row.get("question_choice") or "")
            got = extract_choice(reply, options)
            unparsed += got is None
            correct = got is not None and got == str(row["answer_choice"]).strip().upper()
            expected = row["answer_choice"]
        else:
            got, expected = reply, row["answer"]
            correct = open_answer_correct(reply, expected)
        subset = row.get("subset") or "(none)"
        labels = list(row.get("labels") or []) or [NO_FINDING]
        for bucket in (overall, per_subset[subset], *(per_label[f"{subset}/{label}"] for label in labels)):
            bucket["total"] += 1
            bucket["correct"] += int(correct)
        records.append({"id": row.get("id"), "subset": subset, "labels": labels, "expected": expected,
                        "reply": reply, "extracted": got, "correct": bool(correct)})
    return {
        "mode": mode,
        "overall": _finish(overall),
        "unparsed": unparsed,
        "per_subset": {k: _finish(v) for k, v in sorted(per_subset.items())},
        "per_label": {k: _finish(v) for k, v in sorted(per_label.items())},
        "samples": records,
    }


def evaluate(model, processor, ds, mode: Mode = "choice", batch_size: int = 8, max_new_tokens: int | None = None,
             collator=None, progress: bool = False, scoring: str = "generate") -> dict:
    """`predict` then `score` over `ds` (images are not kept in the records); adds questions per second."""
    import time

    started = time.perf_counter()
    replies = predict(model, processor, ds, mode, batch_size, max_new_tokens, collator, progress, scoring)
    seconds = time.perf_counter() - started
    rows = ds.remove_columns([c for c in ("image",) if c in ds.column_names]).to_list()
    result = score(rows, replies, mode)
    result.update(scoring=scoring, seconds=round(seconds, 3),
                  questions_per_s=round(len(rows) / seconds, 2) if seconds > 0 else None)
    return result
