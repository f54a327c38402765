"""The upstream Med-MAT multiple-choice text format, defined once: written here, parsed here.

    question_choice = "<question>\\nA: <option>\\nB: <option>...\\n" + ANSWER_INSTRUCTION
    answer_choice   = the letter of the correct option

The option count is one setting (`QAFormat.option_count`); letters run A, B, C, ... up to it.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

# Upstream's own text (every `Question-choice` of the released Med-MAT JSON ends with it).
ANSWER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
_OPTION_LINE = re.compile(r"^([A-Z]): (.*)$")


@dataclass(frozen=True)
class QAFormat:
    option_count: int = 4  # upstream: "four options" (paper §2.1)
    answer_instruction: str = ANSWER_INSTRUCTION

    def __post_init__(self) -> None:
        if not 2 <= self.option_count <= 26:
            raise ValueError(f"option_count must be 2..26, not {self.option_count}")

    @property
    def letters(self) -> str:
        return string.ascii_uppercase[: self.option_count]


DEFAULT_FORMAT = QAFormat()


def format_question_choice(question: str, options: list[str], fmt: QAFormat = DEFAULT_FORMAT) -> str:
    """The upstream text: the question, one `L: option` line per option, then the answer instruction."""
    if len(options) > fmt.option_count:
        raise ValueError(f"{len(options)} options but the format allows {fmt.option_count}")
    lines = [question] + [f"{fmt.letters[i]}: {option}" for i, option in enumerate(options)]
    return "\n".join(lines + [fmt.answer_instruction])


def parse_question_choice(text: str, fmt: QAFormat = DEFAULT_FORMAT) -> tuple[str, dict[str, str]]:
    """Split `question\\nA: ..\\nB: ..\\n<instruction>` into the question and {letter: option}."""
    lines = text.split("\n")
    if lines[-1].strip() != fmt.answer_instruction:
        raise ValueError(f"Question-choice must end with {fmt.answer_instruction!r}")
    end = start = len(lines) - 1
    while start > 1 and _OPTION_LINE.match(lines[start - 1]):
        start -= 1
    options = [_OPTION_LINE.match(line).groups() for line in lines[start:end]]
    letters = "".join(letter for letter, _ in options)
    if not options or letters != fmt.letters[: len(options)]:
        raise ValueError(f"Question-choice must list options lettered A, B, ... (at most {fmt.option_count}), "
                         f"got {letters or 'none'}")
    return "\n".join(lines[:start]).strip(), dict(options)


def option_texts(question_choice: str, fmt: QAFormat = DEFAULT_FORMAT) -> list[str]:
    """The option texts of a `question_choice`, in letter order ([] when it is not in the format)."""
    try:
        return list(parse_question_choice(question_choice, fmt)[1].values())
    except ValueError:
        return []
