"""Multiple-choice VQA in the upstream Med-MAT format, as pure functions of (sample id, labels, subset, seed).

Every random choice draws from a generator seeded by the global seed, the sample id and what is being chosen,
so a sample's question never depends on the order of samples or on which process builds it.

Distractors (docs/splits.md): drawn from the subset's labels, or from the labels of the sample's own source when
the subset manifest asks for `distractors: source`; a label related to the answer or to a distractor already drawn
(synonym, overlap, ancestor/descendant, negation; `label_relations` in the subset manifest) is never drawn, so no
option set holds two answers that could both be right. `ambiguous_options` states the rule; `make_qa` refuses to
return an option set it flags.

Formats (upstream; the lettered text itself is `medmat.mat.qa_format`):
  single-label answer: the label; multi-label: labels comma-joined in subset order, "Normal" when none;
  detection/segmentation: boxes as text, "<label>: [x_min, y_min, x_max, y_max]; ..." with coordinates scaled to
  integers in 0..1000 of the image width/height (Qwen-VL style), sorted by label then position; "None" when empty.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
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


Related = Mapping[str, "frozenset[str] | set[str]"]


def _label_distractors(answer: str, labels: Sequence[str], rng: random.Random, wanted: int,
                       related: Related) -> list[str]:
    """Labels in a seeded random order, each kept unless it is related to the answer or to one already kept."""
    others = [label for label in labels if label != answer]
    rng.shuffle(others)
    chosen: list[str] = []
    for label in others:
        if len(chosen) == wanted:
            break
        if not any(label in related.get(x, ()) or x in related.get(label, ()) for x in [answer, *chosen]):
            chosen.append(label)
    return chosen


def _covers(a: Sequence[str], b: Sequence[str], related: Related) -> bool:
    """Every label of `a` is in `b` or related to a label of `b`."""
    return all(x in b or any(x in related.get(y, ()) for y in b) for x in a)


def equivalent_sets(a: Sequence[str], b: Sequence[str], related: Related) -> bool:
    """Two label sets that could describe the same image: equal up to related labels ("Normal" is the empty set)."""
    if not a or not b:
        return not a and not b
    return _covers(a, b, related) and _covers(b, a, related)


def ambiguous_options(options: Sequence[str], answer: str, task_type: str, related: Related,
                      normal: str = NORMAL) -> str | None:
    """Why an option set could hold two right answers, or None. Single-label: two related labels offered together.
    Multi-label: a distractor set equal to the answer's set up to related labels."""
    if len(set(options)) != len(options):
        return f"options repeat: {list(options)}"
    if answer not in options:
        return f"the answer {answer!r} is not among the options"
    if task_type == "single-label":
        for i, a in enumerate(options):
            for b in options[i + 1:]:
                if b in related.get(a, ()) or a in related.get(b, ()):
                    return f"{a!r} and {b!r} are related labels offered together"
    elif task_type == "multi-label":
        def parts(text: str) -> list[str]:
            return [] if text == normal else text.split(", ")
        for option in options:
            if option != answer and equivalent_sets(parts(option), parts(answer), related):
                return f"{option!r} could be as right as the answer {answer!r}"
    return None


def _label_set(labels: list[str], order: list[str]) -> str:
    return ", ".join(sorted(labels, key=order.index)) if labels else NORMAL


def _multi_label_distractors(answer_labels: list[str], vocabulary: list[str], rng: random.Random,
                             wanted: int, related: Related, pool: Sequence[str] | None = None) -> list[str]:
    """Other label sets from the pool (same size where possible), or 'Normal'; all distinct, none equal to the
    answer up to related labels."""
    answer = _label_set(answer_labels, vocabulary)
    draw = [label for label in (pool if pool is not None else vocabulary) if label in vocabulary]
    size = max(1, len(answer_labels))
    candidates: list[str] = []
    attempts = 0
    while len(candidates) < wanted and attempts < 50:
        attempts += 1
        k = min(len(draw), rng.choice([size, max(1, size - 1), size + 1]))
        picked = rng.sample(draw, k) if k and rng.random() > 0.15 else []
        option = _label_set(picked, vocabulary)
        if option != answer and option not in candidates and not equivalent_sets(picked, answer_labels, related):
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
    source: str | None = None  # the sample's source, for `QASettings.source_labels`


@dataclass(frozen=True)
class QASettings:
    """What every question of a subset shares.

    related: label -> labels never offered with it (`LabelRelations.related` of the subset manifest).
    source_labels: source -> the subset labels it uses; when given, a sample's distractors come only from its own
    source's labels (the manifest's `distractors: source`)."""

    task_type: str
    instructions: list[str]
    vocabulary: list[str]
    seed: int = 42
    format: QAFormat = DEFAULT_FORMAT
    related: Mapping[str, frozenset[str]] = field(default_factory=dict)
    source_labels: Mapping[str, Sequence[str]] | None = None

    def pool(self, sample: QASample) -> Sequence[str]:
        if self.source_labels is None:
            return self.vocabulary
        if sample.source not in self.source_labels:
            raise ValueError(f"{sample.id}: distractors are drawn per source, but source {sample.source!r} has no "
                             f"label list; pass QASample(source=...) and QASettings.source_labels for it")
        own = set(self.source_labels[sample.source])
        return [label for label in self.vocabulary if label in own]


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
        pool = None if s.source_labels is None else s.pool(sample)
        distractors = _multi_label_distractors(sample.labels, s.vocabulary, rng, wanted, s.related, pool)
    else:
        if len(sample.labels) != 1:
            raise ValueError(f"{sample.id}: a single-label sample needs exactly one label, has {sample.labels}")
        answer = sample.labels[0]
        distractors = _label_distractors(answer, s.pool(sample), rng, wanted, s.related)
    options = [answer] + distractors
    rng_for(s.seed, sample.id, "order").shuffle(options)
    problem = ambiguous_options(options, answer, s.task_type, s.related)
    if problem:
        raise ValueError(f"{sample.id}: ambiguous options ({problem})")
    return QA(question=question, answer=answer, options=options,
              question_choice=format_question_choice(question, options, fmt),
              answer_choice=fmt.letters[options.index(answer)])
