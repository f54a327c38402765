"""Read the chosen option out of a model's free-text reply, and score open answers.

Pure Python (no torch), so `medmat eval` can rescore saved predictions anywhere. A reply counts as an option when
it is a bare letter ("B", "b"), a letter with punctuation ("B.", "(B)", "B)", "B: Stone"), an announced letter
("Answer: B", "The answer is (B)", "Option B"), the option's text itself ("Stone"), or a reply naming exactly one
option text. Anything else is unparsed (and wrong), never guessed.
"""

from __future__ import annotations

import re
import string

LETTERS = string.ascii_uppercase
_OPTION_LINE = re.compile(r"^\s*([A-Z])\s*[:.)]\s*(.+?)\s*$", re.MULTILINE)
_LEADING = re.compile(r"^\s*[\(\[]?\s*([A-Za-z])\s*(?:[\)\]][.:]?|[.:,;]|\s|$)")
_ANNOUNCED = re.compile(
    r"(?:answer|option|choice)\s*(?:is|would be|:|：|-)?\s*(?:option\s*)?[\(\[]?\s*([A-Z])\s*(?:[\)\]]|\b)",
    re.IGNORECASE,
)
# A capital letter standing alone; "A" followed by a lower-case word is the article, not option A.
_STANDALONE = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])(?!\s+[a-z])")


def options_from_question(question_choice: str) -> list[str]:
    """The option texts of an upstream `question_choice` ("...\\nA: Stone\\nB: Cyst\\n...")."""
    found: dict[str, str] = {}
    for letter, text in _OPTION_LINE.findall(question_choice or ""):
        found.setdefault(letter, text)
    options = []
    for letter in LETTERS:  # only an unbroken run A, B, C, ... counts as the options
        if letter not in found:
            break
        options.append(found[letter])
    return options


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s,]", " ", text.lower()).split())


def extract_choice(reply: str, options: list[str]) -> str | None:
    """The option letter `reply` names among len(options) options, or None when it names none or several."""
    valid = LETTERS[: max(len(options), 1)] if options else LETTERS[:4]
    text = (reply or "").strip()
    if not text:
        return None
    match = _LEADING.match(text)
    if match and match.group(1).upper() in valid:
        rest = text[match.end():].strip()
        # "A man..." is prose, not option A: a leading letter counts when nothing follows, or punctuation marked it.
        marked = text[len(match.group(0).rstrip()) - 1] in ").:]," or match.group(0).lstrip().startswith(("(", "["))
        if not rest or marked:
            return match.group(1).upper()
    for found in _ANNOUNCED.finditer(text):
        if found.group(1).upper() in valid and (found.group(1).isupper() or len(text) <= 12):
            return found.group(1).upper()
    by_text = _match_option_text(text, options)
    if by_text is not None:
        return by_text
    standalone = {m.group(1) for m in _STANDALONE.finditer(text) if m.group(1) in valid}
    if len(standalone) == 1 and len(text.split()) <= 4:
        return standalone.pop()
    return None


def _match_option_text(text: str, options: list[str]) -> str | None:
    reply = _norm(text)
    normed = [_norm(option) for option in options]
    for index, option in enumerate(normed):
        if option and reply == option:
            return LETTERS[index]
    hits = [index for index, option in enumerate(normed)
            if option and re.search(rf"(?<!\w){re.escape(option)}(?!\w)", reply)]
    # One option text inside the reply names that option; drop hits that are part of a longer hit ("Cyst" in
    # "Renal Cyst") so that a longer option wins over its own substring.
    hits = [i for i in hits if not any(j != i and normed[i] in normed[j] for j in hits)]
    return LETTERS[hits[0]] if len(hits) == 1 else None


def open_answer_correct(reply: str, answer: str) -> bool:
    """Open-form scoring: the same label, or the same set of comma-separated labels, ignoring case and punctuation."""
    got = {_norm(part) for part in (reply or "").split(",") if _norm(part)}
    want = {_norm(part) for part in (answer or "").split(",") if _norm(part)}
    return bool(want) and got == want
