"""Multiple-choice VQA in the upstream Med-MAT format, as pure functions of (sample id, labels, subset, seed).

Every random choice draws from a generator seeded by the global seed, the sample id and what is being chosen,
so a sample's question never depends on the order of samples or on which process builds it.

Formats (upstream; the lettered text itself is `medmat.mat.qa_format`):
  single-label answer: the label; multi-label: labels comma-joined in subset order, "Normal" when none;
  detection/segmentation: boxes as text, "<label>: [x_min, y_min, x_max, y_max]; ..." with coordinates scaled to
  integers in 0..1000 of the image width/height (Qwen-VL style), sorted by label then position; "None" when empty.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from .qa_format import ANSWER_INSTRUCTION, DEFAULT_FORMAT, QAFormat, format_question_choice

LETTERS = DEFAULT_FORMAT.letters
MAX_OPTIONS = DEFAULT_FORMAT.option_count
ANSWER_SUFFIX = ANSWER_INSTRUCTION
NORMAL = "Normal"
NO_OBJECT = "None"


def rng_for(seed: int, sample_id: str, purpose: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x1f{purpose}\x1f{sample_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    options: list[str]
    question_choice: str
    answer_choice: str

    def as_row(self) -> dict:
        return {"question": self.question, "answer": self.answer, "options": list(self.options),
                "question_choice": self.question_choice, "answer_choice": self.answer_choice}


def boxes_text(boxes: list[dict], width: int, height: int) -> str:
    if not boxes:
        return NO_OBJECT

    def scale(value: float, size: int) -> int:
        return max(0, min(1000, round(1000 * value / max(size, 1))))

    parts = sorted((b["label"], scale(b["x_min"], width), scale(b["y_min"], height), scale(b["x_max"], width),
                    scale(b["y_max"], height)) for b in boxes)
    return "; ".join(f"{label}: [{x1}, {y1}, {x2}, {y2}]" for label, x1, y1, x2, y2 in parts)


def _label_distractors(answer: str, labels: list[str], rng: random.Random, wanted: int) -> list[str]:
    others = [label for label in labels if label != answer]
    return rng.sample(others, min(wanted, len(others)))


def _label_set(labels: list[str], order: list[str]) -> str:
    return ", ".join(sorted(labels, key=order.index)) if labels else NORMAL


def _multi_label_distractors(answer_labels: list[str], vocabulary: list[str], rng: random.Random,
                             wanted: int) -> list[str]:
    """Other label sets from the subset's labels (same size where possible), or 'Normal'; all distinct."""
    answer = _label_set(answer_labels, vocabulary)
    size = max(1, len(answer_labels))
    candidates: list[str] = []
    attempts = 0
    while len(candidates) < wanted and attempts < 50:
        attempts += 1
        k = min(len(vocabulary), rng.choice([size, max(1, size - 1), size + 1]))
        option = _label_set(rng.sample(vocabulary, k), vocabulary) if rng.random() > 0.15 else NORMAL
        if option != answer and option not in candidates:
            candidates.append(option)
    return candidates


def _box_distractors(boxes: list[dict], labels: list[str], width: int, height: int, rng: random.Random,
                     wanted: int) -> list[str]:
    """Boxes moved to other places of the image (or other labels), so that only reading the image answers."""
    answer = boxes_text(boxes, width, height)
    options: list[str] = []
    attempts = 0
    while len(options) < wanted and attempts < 50:
        attempts += 1
        moved = []
        for box in boxes or [{"label": rng.choice(labels), "x_min": 0, "y_min": 0, "x_max": width / 4,
                              "y_max": height / 4}]:
            w, h = box["x_max"] - box["x_min"], box["y_max"] - box["y_min"]
            x, y = rng.uniform(0, max(width - w, 0)), rng.uniform(0, max(height - h, 0))
            label = box["label"] if rng.random() > 0.25 or len(labels) < 2 else rng.choice(labels)
            moved.append({"label": label, "x_min": x, "y_min": y, "x_max": x + w, "y_max": y + h})
        option = boxes_text(moved, width, height)
        if option != answer and option not in options:
            options.append(option)
    return options


@dataclass(frozen=True)
class QASample:
    """What the question of one sample depends on."""

    id: str
    labels: list[str]
    boxes: list[dict] = field(default_factory=list)
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class QASettings:
    """What every question of a subset shares."""

    task_type: str
    instructions: list[str]
    vocabulary: list[str]
    seed: int = 42
    format: QAFormat = DEFAULT_FORMAT


def make_qa(sample: QASample, settings: QASettings) -> QA:
    """The question, options and answer of one sample."""
    s, fmt = settings, settings.format
    wanted = fmt.option_count - 1
    question = s.instructions[rng_for(s.seed, sample.id, "instruction").randrange(len(s.instructions))]
    rng = rng_for(s.seed, sample.id, "options")
    if s.task_type in ("detection", "segmentation"):
        answer = boxes_text(sample.boxes or [], sample.width, sample.height)
        distractors = _box_distractors(sample.boxes or [], s.vocabulary, sample.width, sample.height, rng, wanted)
    elif s.task_type == "multi-label":
        answer = _label_set(sample.labels, s.vocabulary)
        distractors = _multi_label_distractors(sample.labels, s.vocabulary, rng, wanted)
    else:
        if len(sample.labels) != 1:
            raise ValueError(f"{sample.id}: a single-label sample needs exactly one label, has {sample.labels}")
        answer = sample.labels[0]
        distractors = _label_distractors(answer, s.vocabulary, rng, wanted)
    options = [answer] + distractors
    rng_for(s.seed, sample.id, "order").shuffle(options)
    return QA(question=question, answer=answer, options=options,
              question_choice=format_question_choice(question, options, fmt),
              answer_choice=fmt.letters[options.index(answer)])
