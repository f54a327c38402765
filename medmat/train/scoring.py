"""Detection and segmentation scored as the paper scored them: IoU and cIoU, with boxes in each backbone's own text.

The paper (§6, A.6) trains Next-Chat and MiniGPT-v2 "following the official data formats" and scores detection by
cIoU, "follow (Chen et al., 2023a)" (MiniGPT-v2). cIoU is the cumulative IoU of referring segmentation: the sum of
intersections over the sum of unions across the test set, so large objects weigh more than in the mean IoU. Both are
reported, with Acc@0.5 (the share of samples with IoU >= 0.5) and every count behind them.

Box styles (what a backbone writes; `format_box` writes it, `parse_boxes` reads any of them back):

- ``qwen-vl``: ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``, integers normalised to 0..1000 (Qwen-VL, Qwen2-VL).
- ``minigpt-v2``: ``{<x1><y1><x2><y2>}``, integers normalised to 0..100, after the ``[detection]`` task token.
- ``nextchat``: ``[x1,y1,x2,y2]`` with three-decimal floats in 0..1: the Shikra text form NExT-Chat's data uses
  (NExT-Chat itself decodes boxes from an embedding; the text form is what its data files and our scoring read).
- ``medmat``: ``<label>: [x1, y1, x2, y2]`` integers in 0..1000, the lettered-option form `medmat.mat.qa` writes.

The multiple-choice form of detection (options are shifted boxes, `medmat.mat.qa`) is still scored by option letter
(`medmat.train.evaluate.score`); this module scores the open form. Masks: `mask_ciou` over boolean arrays, and
`box_of_mask` gives a mask's outermost coordinates, as the paper builds boxes from segmentation data (A.6).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

STYLES = ("qwen-vl", "minigpt-v2", "nextchat", "medmat")
SCALE = {"qwen-vl": 1000, "minigpt-v2": 100, "nextchat": 1, "medmat": 1000}
# Which style a backbone writes (by the paper's model names and the checkpoints' model types).
BACKBONE_STYLES = {"Qwen2-VL-7B-Instruct": "qwen-vl", "qwen2_vl": "qwen-vl", "qwen2_5_vl": "qwen-vl",
                   "MiniGPT-v2": "minigpt-v2", "Next-Chat": "nextchat", "LLaVA-1.5-7B": "medmat", "llava": "medmat"}

_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_PATTERNS = {
    "qwen-vl": re.compile(r"<\|box_start\|>\s*\(" + _NUM + "," + _NUM + r"\)\s*,\s*\(" + _NUM + "," + _NUM
                          + r"\)\s*<\|box_end\|>"),
    "minigpt-v2": re.compile(r"\{\s*<" + _NUM + "><" + _NUM + "><" + _NUM + "><" + _NUM + r">\s*\}"),
    "nextchat": re.compile(r"\[" + _NUM + "," + _NUM + "," + _NUM + "," + _NUM + r"\]"),
}


class BoxFormatError(ValueError):
    pass


def _check_style(style: str) -> str:
    if style not in STYLES:
        raise BoxFormatError(f"unknown box style {style!r}; use one of {', '.join(STYLES)}")
    return style


def format_box(box: Sequence[float], width: int, height: int, style: str) -> str:
    """One pixel box (x_min, y_min, x_max, y_max) of a `width` x `height` image as `style` writes it."""
    _check_style(style)
    x1, y1, x2, y2 = (min(max(v / max(size, 1), 0.0), 1.0) for v, size in zip(box, (width, height, width, height)))
    if style == "nextchat":
        return "[" + ",".join(f"{v:.3f}" for v in (x1, y1, x2, y2)) + "]"
    n = SCALE[style]
    a, b, c, d = (round(v * n) for v in (x1, y1, x2, y2))
    if style == "qwen-vl":
        return f"<|box_start|>({a},{b}),({c},{d})<|box_end|>"
    if style == "minigpt-v2":
        return f"{{<{a}><{b}><{c}><{d}>}}"
    return f"[{a}, {b}, {c}, {d}]"


def format_answer(boxes: Iterable[dict], width: int, height: int, style: str) -> str:
    """The open-form detection answer: every labelled box (schema `boxes`) in `style`; 'None' when there is none."""
    _check_style(style)
    parts = []
    for b in sorted(boxes, key=lambda b: (b["label"], b["x_min"], b["y_min"])):
        text = format_box((b["x_min"], b["y_min"], b["x_max"], b["y_max"]), width, height, style)
        parts.append(f"<p>{b['label']}</p> {text}" if style == "minigpt-v2" else
                     f"{b['label']}: {text}" if style in ("medmat", "nextchat") else f"{b['label']}{text}")
    return ("[detection] " if style == "minigpt-v2" and parts else "") + ("; ".join(parts) or "None")


def parse_boxes(text: str, width: int, height: int, style: str) -> list[tuple[float, float, float, float]]:
    """Pixel boxes read from a reply written in `style` (corners are put in order; values are clipped)."""
    _check_style(style)
    pattern = _PATTERNS["nextchat" if style == "medmat" else style]
    n = SCALE[style]
    found = []
    for m in pattern.finditer(text or ""):
        v = [float(g) for g in m.groups()]
        if style == "nextchat" and any(x > 1.0 for x in v):
            continue  # not normalised: not this style
        x1, y1, x2, y2 = (min(max(x / n, 0.0), 1.0) for x in v)
        x1, x2 = sorted((x1 * width, x2 * width))
        y1, y2 = sorted((y1 * height, y2 * height))
        found.append((x1, y1, x2, y2))
    return found


def _area(b) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def intersection(a, b) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(a, b) -> float:
    """IoU of two pixel boxes (x_min, y_min, x_max, y_max); 0 when both are empty."""
    inter = intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def match(pred: Sequence, gold: Sequence) -> tuple[float, float, list[float]]:
    """Greedy one-to-one matching by IoU: (intersection, union, IoU per gold box) of one sample. Unmatched predicted
    boxes add their area to the union (a wrong extra box costs); unmatched gold boxes add theirs with IoU 0."""
    left = list(pred)
    inter_sum = union_sum = 0.0
    per_gold = []
    for g in sorted(gold, key=_area, reverse=True):
        best = max(range(len(left)), key=lambda i: iou(left[i], g), default=None)
        if best is not None and iou(left[best], g) > 0:
            p = left.pop(best)
            inter = intersection(p, g)
            inter_sum += inter
            union_sum += _area(p) + _area(g) - inter
            per_gold.append(iou(p, g))
        else:
            union_sum += _area(g)
            per_gold.append(0.0)
    union_sum += sum(_area(p) for p in left)
    return inter_sum, union_sum, per_gold


def _gold(row: dict) -> list[tuple[float, float, float, float]]:
    return [(b["x_min"], b["y_min"], b["x_max"], b["y_max"]) for b in row.get("boxes") or []]


def _size(row: dict) -> tuple[int, int]:
    if row.get("width") and row.get("height"):
        return int(row["width"]), int(row["height"])
    image = row.get("image")
    if hasattr(image, "size"):
        return image.size
    raise BoxFormatError(f"row {row.get('id')!r} has neither width/height nor an image to take its size from")


def score_boxes(rows: list[dict], replies: list[str], style: str) -> dict:
    """cIoU, mean IoU and Acc@0.5 of `replies` (written in `style`) against each row's `boxes`, with counts.

    Rows need `boxes` (pixels) and `width`/`height` or an `image`. Rows without a gold box are skipped (there is
    nothing to localise) and counted in `skipped`."""
    if len(rows) != len(replies):
        raise ValueError(f"{len(rows)} rows but {len(replies)} replies")
    inter_sum = union_sum = 0.0
    ious, unparsed, skipped, records = [], 0, 0, []
    for row, reply in zip(rows, replies):
        gold = _gold(row)
        if not gold:
            skipped += 1
            continue
        width, height = _size(row)
        pred = parse_boxes(reply, width, height, style)
        unparsed += not pred
        inter, union, per = match(pred, gold)
        inter_sum += inter
        union_sum += union
        ious += per
        records.append({"id": row.get("id"), "reply": reply, "boxes": [list(p) for p in pred],
                        "iou": [round(v, 4) for v in per]})
    n = len(ious)
    return {
        "metric": "ciou", "style": style,
        "ciou": round(100.0 * inter_sum / union_sum, 2) if union_sum else None,
        "mean_iou": round(100.0 * sum(ious) / n, 2) if n else None,
        "acc_at_50": round(100.0 * sum(v >= 0.5 for v in ious) / n, 2) if n else None,
        "objects": n, "samples": len(records), "unparsed": unparsed, "skipped": skipped,
        "intersection": round(inter_sum, 3), "union": round(union_sum, 3), "records": records,
    }


def box_of_mask(mask) -> tuple[int, int, int, int] | None:
    """The outermost coordinates of a mask's foreground, as a pixel box with exclusive max; None when empty."""
    m = np.asarray(mask) > 0
    if not m.any():
        return None
    ys, xs = np.nonzero(m)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def mask_ciou(pred: Iterable, gold: Iterable) -> dict:
    """cIoU and mean IoU of predicted masks against gold masks (same shapes), with the summed counts."""
    inter_sum = union_sum = 0
    ious = []
    for p, g in zip(pred, gold, strict=True):
        p, g = np.asarray(p) > 0, np.asarray(g) > 0
        if p.shape != g.shape:
            raise ValueError(f"mask shapes differ: {p.shape} vs {g.shape}")
        inter, union = int(np.logical_and(p, g).sum()), int(np.logical_or(p, g).sum())
        inter_sum += inter
        union_sum += union
        ious.append(inter / union if union else 1.0)
    return {"metric": "ciou", "ciou": round(100.0 * inter_sum / union_sum, 2) if union_sum else None,
            "mean_iou": round(100.0 * sum(ious) / len(ious), 2) if ious else None, "samples": len(ious),
            "intersection": inter_sum, "union": union_sum}
