"""Answer extraction, table-driven (pure Python; no torch).

The replies are the shapes the issue lists (hedges, negations, a leading letter before prose, lower-case announced
letters) plus the ones the scorer has always accepted; options are the tiny models' labels.
"""

from __future__ import annotations

import pytest

from medmat.train.extract import extract_choice, open_answer_correct, options_from_question

OPTIONS = ["Stone", "Cyst", "Normal", "Tumor"]
BENIGN = ["Benign", "Malignant"]

TABLE = [
    # (reply, options, expected letter or None)
    # bare and marked letters
    ("B", OPTIONS, "B"), ("b", OPTIONS, "B"), ("B.", OPTIONS, "B"), ("(B)", OPTIONS, "B"), ("B)", OPTIONS, "B"),
    ("[C]", OPTIONS, "C"), ("B: Cyst", OPTIONS, "B"), ("D", OPTIONS, "D"), (" c ", OPTIONS, "C"),
    # a leading letter beats the prose after it
    ("B\n\nThe image shows a stone", OPTIONS, "B"), ("A. Stone, not a tumor", OPTIONS, "A"),
    ("C is correct", OPTIONS, "C"), ("A is the answer", OPTIONS, "A"), ("D is the correct answer.", OPTIONS, "D"),
    # announced letters, any case
    ("Answer: B", OPTIONS, "B"), ("The answer is (B).", OPTIONS, "B"), ("The answer is b", OPTIONS, "B"),
    ("The answer is b.", OPTIONS, "B"), ("Option B", OPTIONS, "B"), ("It is C", OPTIONS, "C"),
    ("The correct option is D", OPTIONS, "D"),
    # option texts
    ("Cyst", OPTIONS, "B"), ("cyst.", OPTIONS, "B"), ("The image shows a cyst", OPTIONS, "B"),
    ("The answer is a cyst", OPTIONS, "B"), ("Malignant", BENIGN, "B"),
    # hedges: two options named
    ("A or B", OPTIONS, None), ("Both A and B", OPTIONS, None), ("B, C", OPTIONS, None), ("B/C", OPTIONS, None),
    ("Stone or cyst", OPTIONS, None), ("Either stone or tumor", OPTIONS, None), ("A and C", OPTIONS, None),
    # negations of the only option named
    ("Not a cyst", OPTIONS, None), ("not malignant", BENIGN, None), ("It is not B", OPTIONS, None),
    ("This is not a tumor", OPTIONS, None), ("No stone", OPTIONS, None),
    # nothing usable
    ("A man walks", OPTIONS, None), ("E", OPTIONS, None), ("", OPTIONS, None), ("no idea", OPTIONS, None),
    ("I cannot tell from this image", OPTIONS, None),
]


@pytest.mark.parametrize("reply,options,expected", TABLE, ids=[repr(r) for r, _, _ in TABLE])
def test_extract_choice_table(reply, options, expected):
    assert extract_choice(reply, options) == expected


def test_longer_option_text_wins_and_options_come_from_the_question():
    assert extract_choice("Renal cyst", ["Cyst", "Renal cyst", "Normal"]) == "B"
    question = "Q?\nA: Stone\nB: Cyst\nC: Normal\nAnswer with the option's letter from the given choices directly."
    assert options_from_question(question) == ["Stone", "Cyst", "Normal"]
    assert extract_choice("D", options_from_question(question)) is None  # only three options
    assert open_answer_correct("glaucoma, cataract", "Cataract, Glaucoma")
    assert not open_answer_correct("cataract", "Cataract, Glaucoma")
