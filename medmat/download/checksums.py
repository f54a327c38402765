"""`--register-checksums`: write the sizes and sha256 of verified downloads back into the source manifests.

The edit is minimal and reviewable (as TFDS's register_checksums): ruamel.yaml's round-trip parser locates each
`files` entry and its keys in the text, and only the missing `size:` / `sha256:` keys are inserted after the
entry's `url` (block style: new lines; flow style: `, size: N, sha256: X` inside the braces). Nothing else in the
file moves: comments, wrapping and quoting stay as they were. The result is re-parsed and must equal the old data
plus the new keys, else nothing is written. A value that is already recorded and differs is never overwritten.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import yaml
from ruamel.yaml import YAML

from ..registry import Registry


class ChecksumError(Exception):
    pass


def manifest_path(registry: Registry, source_id: str) -> Path:
    return Path(registry.root).parent / registry.source_files[source_id]


def _value_end(line: str, col: int) -> int | None:
    """Index just past the scalar that starts at `col` on `line` (flow context), or None if it runs on."""
    if col >= len(line):
        return None
    quote = line[col]
    if quote in "\"'":
        i = col + 1
        while i < len(line):
            if quote == '"' and line[i] == "\\":
                i += 2
                continue
            if line[i] == quote:
                if quote == "'" and line[i + 1:i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return None
    i = col
    while i < len(line) and line[i] not in ",}]" and line[i:i + 2] != " #":
        i += 1
    while i > col and line[i - 1] == " ":
        i -= 1
    return i


def plan_edit(text: str, checksums: dict[str, tuple[int, str]], shown: str = "manifest") -> tuple[str, list[str]]:
    """The new text and one line per recorded value; raises ChecksumError on a conflict or an uneditable entry."""
    doc = YAML(typ="rt").load(text)
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int, str]] = []  # (line, column, text to insert)
    recorded: list[str] = []
    expected = yaml.safe_load(text)
    for index, entry in enumerate(doc.get("files") or []):
        name = entry.get("name")
        if name not in checksums:
            continue
        size, digest = checksums[name]
        missing = []
        for key, value in (("size", size), ("sha256", digest)):
            if key in entry:
                if entry[key] != value:
                    raise ChecksumError(
                        f"{shown}: files[{index}] ({name}) records {key} {entry[key]}, but the verified download "
                        f"has {value}; if upstream changed the file on purpose, edit the manifest by hand")
            else:
                missing.append((key, value))
        if not missing:
            continue
        anchor = "size" if "size" in entry else "url"
        line_no, col = entry.lc.value(anchor)
        end = _value_end(lines[line_no].rstrip("\n"), col)
        if end is None:
            raise ChecksumError(f"{shown}: cannot place the checksum of {name} automatically (its {anchor} runs over "
                                f"several lines); add {', '.join(f'{k}: {v}' for k, v in missing)} by hand")
        if entry.fa.flow_style():
            edits.append((line_no, end, "".join(f", {k}: {v}" for k, v in missing)))
        else:
            indent = " " * entry.lc.key(anchor)[1]
            edits.append((line_no, len(lines[line_no].rstrip("\r\n")), "".join(f"\n{indent}{k}: {v}" for k, v in missing)))
        expected["files"][index].update(dict(missing))
        recorded += [f"{name}: {k} {v}" for k, v in missing]
    for line_no, col, insert in sorted(edits, reverse=True):
        line = lines[line_no]
        lines[line_no] = line[:col] + insert + line[col:]
    new_text = "".join(lines)
    if yaml.safe_load(new_text) != expected:
        raise ChecksumError(f"{shown}: the automatic edit would change more than the checksums; add them by hand: "
                            + "; ".join(recorded))
    return new_text, recorded


def register(registry: Registry, source_id: str, checksums: dict[str, tuple[int, str]]) -> str:
    """Record `checksums` (file name -> (size, sha256)) in the source's manifest; returns the unified diff."""
    path = manifest_path(registry, source_id)
    shown = registry.source_files[source_id]
    old = path.read_text(encoding="utf-8")
    new, _ = plan_edit(old, checksums, shown)
    if new == old:
        return ""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        f"a/{shown}", f"b/{shown}"))
