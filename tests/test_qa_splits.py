"""QA generation and leak-free splits, as pure functions."""

from __future__ import annotations

import random

import pytest

from medmat.mat.qa import ANSWER_SUFFIX, LETTERS, NORMAL, QASample, QASettings, boxes_text
from medmat.mat.qa import make_qa as _make_qa


def make_qa(sample_id, labels, task_type, instructions, vocabulary, seed, boxes=None, width=0, height=0):
    return _make_qa(QASample(sample_id, labels, boxes or [], width, height),
                    QASettings(task_type, instructions, vocabulary, seed))
from medmat.mat.splits import PAPER_TRAIN_CAP, SampleKey, assign_splits, components, paper_selection

INSTRUCTIONS = [f"Instruction {i} about this kidney CT." for i in range(6)]
LABELS = ["Normal", "Cyst", "Tumor", "Stone", "Abscess"]


@pytest.mark.parametrize("i", range(40))
def test_single_label_answer_is_among_at_most_four_options(i):
    qa = make_qa(f"s/{i}", [LABELS[i % 5]], "single-label", INSTRUCTIONS, LABELS, seed=42)
    assert qa.answer == LABELS[i % 5]
    assert 2 <= len(qa.options) <= 4 and len(set(qa.options)) == len(qa.options)
    assert set(qa.options) <= set(LABELS)
    assert qa.options[LETTERS.index(qa.answer_choice)] == qa.answer
    lines = qa.question_choice.split("\n")
    assert lines[0] == qa.question and qa.question in INSTRUCTIONS and lines[-1] == ANSWER_SUFFIX
    assert lines[1:-1] == [f"{LETTERS[k]}: {opt}" for k, opt in enumerate(qa.options)]


def test_fewer_options_when_the_subset_has_fewer_labels():
    qa = make_qa("s/1", ["Yes"], "single-label", INSTRUCTIONS, ["Yes", "No"], seed=1)
    assert sorted(qa.options) == ["No", "Yes"]


def test_multi_label_answers():
    vocab = ["Atelectasis", "Cardiomegaly", "Effusion", "Mass"]
    qa = make_qa("m/1", ["Mass", "Cardiomegaly"], "multi-label", INSTRUCTIONS, vocab, seed=42)
    assert qa.answer == "Cardiomegaly, Mass"  # subset order, comma-joined
    none = make_qa("m/2", [], "multi-label", INSTRUCTIONS, vocab, seed=42)
    assert none.answer == NORMAL
    for q in (qa, none):
        assert q.answer in q.options and len(set(q.options)) == len(q.options) <= 4
        for option in q.options:
            assert option == NORMAL or set(option.split(", ")) <= set(vocab)


def test_boxes_as_text_and_box_options():
    boxes = [{"label": "Polyp", "x_min": 10, "y_min": 20, "x_max": 60, "y_max": 80}]
    assert boxes_text(boxes, 200, 100) == "Polyp: [50, 200, 300, 800]"
    qa = make_qa("d/1", ["Polyp"], "detection", INSTRUCTIONS, ["Polyp"], 42, boxes, 200, 100)
    assert qa.answer == "Polyp: [50, 200, 300, 800]" and qa.answer in qa.options
    assert len(set(qa.options)) == len(qa.options) == 4
    assert boxes_text([], 10, 10) == "None"


def test_qa_depends_only_on_id_and_seed():
    ids = [f"s/{i}" for i in range(30)]
    first = {i: make_qa(i, ["Cyst"], "single-label", INSTRUCTIONS, LABELS, 42) for i in ids}
    shuffled = ids[:]
    random.Random(0).shuffle(shuffled)
    assert {i: make_qa(i, ["Cyst"], "single-label", INSTRUCTIONS, LABELS, 42) for i in shuffled} == first
    assert any(make_qa(i, ["Cyst"], "single-label", INSTRUCTIONS, LABELS, 7) != first[i] for i in ids)
    assert len({q.question for q in first.values()}) > 1  # instructions really vary


def _key(i, group=None, split=None, sha=None, phash=None, label="A"):
    return SampleKey(id=f"src/{i}", group_id=group, original_split=split, pixel_sha256=sha or f"sha{i}",
                     phash=phash or f"{(i * 0x9E3779B97F4A7C15) % 2**64:016x}", balance_key=label)


def test_groups_never_straddle_and_ratio_is_about_nine_to_one():
    keys = [_key(i, group=f"patient{i // 3}") for i in range(3000)]
    splits = assign_splits(keys, seed=42)
    by_group = {}
    for k in keys:
        by_group.setdefault(k.group_id, set()).add(splits[k.id])
    assert all(len(sides) == 1 for sides in by_group.values())
    test_share = sum(s == "test" for s in splits.values()) / len(splits)
    assert 0.07 < test_share < 0.13


def test_exact_and_near_duplicates_are_kept_on_one_side():
    keys = [_key(i) for i in range(200)]
    keys.append(_key(900, split="test", sha="sha5"))  # an exact copy of sample 5, in an official test split
    near = int(keys[7].phash, 16) ^ 0b101  # 2 bits away from sample 7
    keys.append(_key(901, split="test", phash=f"{near:016x}"))
    comp = components(keys)
    assert comp[5] == comp[200] and comp[7] == comp[201]
    splits = assign_splits(keys, seed=42)
    assert splits["src/5"] == splits["src/900"] == "test"
    assert splits["src/7"] == splits["src/901"] == "test"


def test_official_splits_are_kept():
    keys = [_key(i, split="Training" if i % 4 else "Test_v2") for i in range(100)]
    splits = assign_splits(keys, seed=42)
    assert all(splits[k.id] == ("train" if k.original_split == "Training" else "test") for k in keys)


def test_paper_flavour_caps_and_balances():
    keys = [_key(i, label=["A", "B", "C"][i % 3] if i < 9000 else "A") for i in range(12000)]
    splits = assign_splits(keys, seed=42)
    paper = paper_selection(keys, splits, seed=42)
    train = [k for k in keys if paper.get(k.id) == "train"]
    test = [k for k in keys if paper.get(k.id) == "test"]
    assert len(train) == PAPER_TRAIN_CAP
    counts = {label: sum(k.balance_key == label for k in train) for label in "ABC"}
    assert counts == {"A": 1000, "B": 1000, "C": 1000}
    test_counts = {label: sum(k.balance_key == label for k in test) for label in "ABC"}
    assert len(set(test_counts.values())) == 1 and test_counts["A"] == 50
    assert all(splits[k.id] == paper[k.id] for k in train + test)  # a subset of the full flavour
