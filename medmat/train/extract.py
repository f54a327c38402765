"""Read the chosen option out of a model's free-text reply, and score open answers.

Pure Python (no torch), so `medmat eval` can rescore saved predictions anywhere. In order:

1. A leading letter wins: "B", "b", "B.", "(B)", "B)", "B: Stone", "B\\n\\nThe image shows a stone", "C is correct".
   ("A man walks" is prose: a capital followed by a lower-case word is the article, not option A.)
2. An announced letter: "Answer: B", "The answer is (B)", "The answer is b", "Option B", "It is C".
3. The option's text, or a reply naming exactly one option text ("Stone", "The image shows a cyst").

A reply that hedges (names two or more options: "A or B", "Both A and B", "Stone or cyst") or negates the option it
names ("Not a cyst", "not malignant", "It is not B") is unparsed, and so is anything else: never guessed.
"""

from __future__ import annotations

import re
import string

LETTERS = string.ascii_uppercase
_OPTION_LINE = re.compile(r"^\s*([A-Z])\s*[:.)]\s*(.+?)\s*$", re.MULTILINE)
# A leading letter: bracketed, or followed by punctuation, a line break, the end, or "is (the) correct/right/answer".
_LEADING = re.compile(
    r"^\s*(?:[\(\[]\s*([A-Za-z])\s*[\)\]]|([A-Za-z])(?=\s*(?:[.:,;)\]]|\n|$))|"
    r"([A-Z])(?=\s+(?:is|would be|seems)\s+(?:the\s+)?(?:correct|right|best|answer)\b))")
_ANNOUNCED = re.compile(
    r"(?:answer|option|choice|it)\s*(?:is|would be|:|：|-)?\s*(?:option\s*)?"
    r"(?:[\(\[]\s*([A-Za-z])\s*[\)\]]|([A-Za-z])(?=\s*(?:[.:,;)\]!]|\n|$))|([A-Z])(?![A-Za-z'])(?!\s+[a-z]))",
    re.IGNORECASE,
)
# A capital letter standing alone; "A" followed by a lower-case word is the article, not option A (but "A or B",
# "A and B", "A is correct" name option A).
_STANDALONE = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])(?!\s+(?!(?:or|and|nor|is)\b)[a-z])")
_HEDGE = re.compile(r"\b(?:or|either|both|and|nor|neither|maybe|possibly|between)\b|/", re.IGNORECASE)
_JOINED = re.compile(r"\s*(?:,|/|&|\bor\b|\band\b)", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|no|never|isn't|isnt|is\s+not|without|rule[sd]?\s+out|unlikely|neither|nor)\b",
                       re.IGNORECASE)


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


def _negated(text: str, start: int) -> bool:
    """A negation within the three words before position `start` of `text` ("not a cyst", "is not B")."""
    before = text[:start].split()[-3:]
    return bool(_NEGATION.search(" ".join(before)))


def extract_choice(reply: str, options: list[str]) -> str | None:
    """The option letter `reply` names among len(options) options, or None when it names none, several, or negates it."""
    valid = LETTERS[: max(len(options), 1)] if options else LETTERS[:4]
    text = (reply or "").strip()
    if not text:
        return None
    leading = _LEADING.match(text)
    if leading:
        letter = next(g for g in leading.groups() if g).upper()
        rest = text[leading.end():]
        first_line = rest.split("\n", 1)[0]
        if letter in valid:
            # "B, C", "B or C", "B/C": a second option right after the first is a hedge, refused.
            hedged = _JOINED.match(first_line) and _letters_in(first_line[:16], valid)
            return None if hedged else letter
    letters = _letters_in(text, valid)
    texts = _option_texts_in(text, options)
    named = {letter for letter, _ in letters} | {letter for letter, _ in texts}
    if len(named) > 1 and _HEDGE.search(text):
        return None  # "Both A and B", "Stone or cyst"
    if any(_negated(text, start) for _, start in letters + texts):
        return None  # "Not a cyst", "It is not B"
    for found in _ANNOUNCED.finditer(text):
        letter = next(g for g in found.groups() if g).upper()
        if letter in valid:
            return letter
    by_text = _match_option_text(text, options)
    if by_text is not None:
        return by_text
    standalone = {letter for letter, _ in letters}
    if len(standalone) == 1 and len(text.split()) <= 4:
        return standalone.pop()
    return None


def _letters_in(text: str, valid: str) -> list[tuple[str, int]]:
    return [(m.group(1), m.start()) for m in _STANDALONE.finditer(text) if m.group(1) in valid]


def _option_texts_in(text: str, options: list[str]) -> list[tuple[str, int]]:
    """(letter, position) of every option text found in `text` (a longer option hides its own substring)."""
    lowered = text.lower()
    hits = []
    for index, option in enumerate(options):
        needle = option.strip().lower()
        if not needle:
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(needle)}(?!\w)", lowered):
            hits.append((index, m.start(), m.end()))
    kept = [h for h in hits if not any(o != h and o[1] <= h[1] and h[2] <= o[2] and (o[2] - o[1]) > (h[2] - h[1])
                                       for o in hits)]
    return [(LETTERS[i], start) for i, start, _ in kept]


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
