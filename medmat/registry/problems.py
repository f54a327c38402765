"""A problem found in a manifest: which file, which field, what is wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        text = f"{where}: {self.message}"
        return f"{text}\n    fix: {self.fix}" if self.fix else text


def _dotted(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


_FIXES = {
    "missing": "add this field; see docs/schema/ for its type",
    "extra_forbidden": "remove the key or correct its spelling (unknown keys are refused)",
    "enum": "use one of the values listed in the message",
    "literal_error": "use one of the values listed in the message",
    "url_parsing": "write a full http(s):// URL",
    "url_scheme": "write a full http(s):// URL",
    "string_pattern_mismatch": "match the pattern in the message (ids are lowercase slugs like 'isic-2019')",
    "too_short": "add the missing entries",
    "string_too_short": "write a non-empty value",
}


def problems_from_validation(file: str, error: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into one Problem per faulty field."""
    found = []
    for err in error.errors(include_url=False):
        # Pydantic puts the failing union member or validator name into loc; drop the noise.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        message = err["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(err["type"], "")
        if err["type"] == "missing":
            fix = f"add `{loc[-1]}:`" if loc else fix
        found.append(Problem(file, _dotted(loc), message, fix))
    return found
