"""Generate answers for a test split and score them: option-letter accuracy per subset and per label, with counts.

`predict` runs greedy generation in batches; `score` is pure Python over (row, reply) pairs so saved predictions
can be rescored. Every percentage is reported with the `correct` and `total` behind it.
"""

from __future__ import annotations

from collections import defaultdict

from .config import Mode
from .extract import extract_choice, open_answer_correct, options_from_question

NO_FINDING = "(no finding)"


def predict(model, processor, ds, mode: Mode = "choice", batch_size: int = 8, max_new_tokens: int | None = None,
            collator=None, progress: bool = False) -> list[str]:
    """Greedy replies of `model` for every row of `ds`, in row order."""
    import torch
    from tqdm import tqdm

    from .collate import collator_for

    collator = collator or collator_for(model, processor, mode, train=False)
    max_new_tokens = max_new_tokens or (8 if mode == "choice" else 64)
    tokenizer = getattr(processor, "tokenizer", processor)
    device = next(model.parameters()).device
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    was_training = model.training
    model.eval()
    replies: list[str] = []
    try:
        for start in tqdm(range(0, len(ds), batch_size), disable=not progress, desc="eval", unit="batch"):
            rows = [ds[i] for i in range(start, min(start + batch_size, len(ds)))]
            batch = collator(rows)
            batch = {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in batch.items()}
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=collator.pad_id)
            new = out[:, batch["input_ids"].shape[1]:]
            replies.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return [reply.strip() for reply in replies]


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
             collator=None, progress: bool = False) -> dict:
    """`predict` then `score` over `ds` (images are not kept in the records)."""
    replies = predict(model, processor, ds, mode, batch_size, max_new_tokens, collator, progress)
    rows = ds.remove_columns([c for c in ("image",) if c in ds.column_names]).to_list()
    return score(rows, replies, mode)
