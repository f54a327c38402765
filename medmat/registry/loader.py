"""Read the manifests folder into typed models, collecting every problem instead of stopping at the first."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .models import LicenseRegistry, Source, Subset, Vocabulary
from .problems import Problem, problems_from_validation

DEFAULT_MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

M = TypeVar("M", bound=BaseModel)
# libyaml's parser when PyYAML was built with it (the wheels are): ten times faster on 160+ manifests.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Registry:
    root: Path
    vocabulary: Vocabulary | None = None
    licenses: LicenseRegistry | None = None
    sources: dict[str, Source] = field(default_factory=dict)
    subsets: dict[str, Subset] = field(default_factory=dict)
    # Where each model came from, for error messages: id -> path relative to root's parent.
    source_files: dict[str, str] = field(default_factory=dict)
    subset_files: dict[str, str] = field(default_factory=dict)

    def subset_of(self, source_id: str) -> list[Subset]:
        return [s for s in self.subsets.values() if source_id in s.sources]


def default_manifests_dir() -> Path:
    """The manifests shipped with medmat (the repo checkout or the installed package data)."""
    if DEFAULT_MANIFESTS.is_dir():
        return DEFAULT_MANIFESTS
    packaged = Path(__file__).resolve().parents[1] / "manifests"
    return packaged


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent))
    except ValueError:
        return str(path)


def read_yaml(path: Path, shown: str) -> tuple[dict | None, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(shown, "", f"cannot be read: {exc}", "save the file as UTF-8 text")]
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [Problem(shown, "", f"is not valid YAML at {where}: {reason}", "fix the YAML syntax there")]
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        return None, [Problem(shown, "", f"must hold a mapping of fields, but it is {kind}",
                              "start from a valid manifest (see docs/maintainers.md)")]
    return data, []


def parse_model(model: type[M], path: Path, shown: str) -> tuple[M | None, list[Problem]]:
    data, problems = read_yaml(path, shown)
    if data is None:
        return None, problems
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, problems_from_validation(shown, exc)


def load_registry(root: Path | None = None) -> tuple[Registry, list[Problem]]:
    """Load every manifest under `root`; a file that fails to parse is reported and left out."""
    root = Path(root) if root else default_manifests_dir()
    registry = Registry(root=root)
    problems: list[Problem] = []
    if not root.is_dir():
        return registry, [Problem(str(root), "", "is not a folder", "pass the manifests folder, e.g. `medmat validate manifests`")]

    for name, model, attr in (("vocabulary.yaml", Vocabulary, "vocabulary"), ("licenses.yaml", LicenseRegistry, "licenses")):
        path = root / name
        shown = _display(path, root)
        if not path.is_file():
            problems.append(Problem(shown, "", "is missing", f"restore {name} from the repository"))
            continue
        parsed, found = parse_model(model, path, shown)
        problems += found
        setattr(registry, attr, parsed)

    for folder, model, store, files in (
        ("sources", Source, registry.sources, registry.source_files),
        ("subsets", Subset, registry.subsets, registry.subset_files),
    ):
        paths = sorted((root / folder).glob("*.yaml")) + sorted((root / folder).glob("*.yml"))
        if not paths:
            problems.append(Problem(_display(root / folder, root), "", "holds no manifests", f"add {folder}/*.yaml"))
        for path in paths:
            shown = _display(path, root)
            parsed, found = parse_model(model, path, shown)
            problems += found
            if parsed is None:
                continue
            if parsed.id in store:
                problems.append(Problem(shown, "id", f"{parsed.id!r} is already used by {files[parsed.id]}",
                                        "give each manifest its own id"))
                continue
            store[parsed.id] = parsed
            files[parsed.id] = shown
    return registry, problems


def with_layout_root(source: Source, root: str) -> Source:
    """The source with `layout.root` replaced (a `--layout-root` override, relative to DIR/<source-id>/; '' or '.'
    for the folder itself). `expected_files` under the old root move with it, so `doctor` checks the same tree."""
    new = "/".join(p for p in root.strip().strip("/").split("/") if p and p != ".")
    if ".." in new.split("/"):
        raise ValueError(f"--layout-root {root!r} must stay inside the source folder (no ..)")
    old = source.layout.root.strip("/")
    moved = []
    for item in source.expected_files:
        path = item.path
        if not old:
            path = f"{new}/{path}" if new else path
        elif path == old or path.startswith(old + "/"):
            path = (new + path[len(old):]).lstrip("/") if new else path[len(old):].lstrip("/")
        moved.append(item.model_copy(update={"path": path or "./"}))
    return source.model_copy(update={"layout": source.layout.model_copy(update={"root": new}),
                                     "expected_files": moved})


def with_layout_roots(reg: Registry, overrides: dict[str, str]) -> Registry:
    """A copy of the registry whose named sources take the given layout roots."""
    if not overrides:
        return reg
    unknown = sorted(set(overrides) - set(reg.sources))
    if unknown:
        raise ValueError(f"--layout-root names unknown source(s) {unknown}")
    sources = dict(reg.sources)
    for sid, root in overrides.items():
        sources[sid] = with_layout_root(sources[sid], root)
    return dataclasses.replace(reg, sources=sources)
