"""The package's shape (issue 9): no import cycles, a registry that imports nothing above it, a fast CLI that
imports no image or ML library, the QA text format in one place, one row constructor, an accounting that can
fail, and CG caps applied by a stated seeded rule."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import medmat
from medmat.mat.qa import QASample, QASettings, make_qa
from medmat.mat.qa_format import QAFormat, parse_question_choice
from medmat.mat.schema import COLUMNS, RowError, make_row

PACKAGE = Path(medmat.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> medmat modules it imports at module level (imports inside functions are lazy by design)."""
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            found |= {c for c in candidates if c in modules and c != name}
        graph[name] = found
    return graph


def test_no_import_cycles():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_registry_imports_no_other_medmat_package():
    for module, targets in _imports().items():
        if module.startswith("medmat.registry"):
            outside = sorted(t for t in targets if not t.startswith("medmat.registry"))
            assert not outside, f"{module} imports {outside}"


def test_modules_stay_small_and_one_top_level_package():
    big = {p.relative_to(PACKAGE.parent).as_posix(): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not big, big
    assert not (PACKAGE.parent / "builders").exists()


def test_cli_help_imports_no_image_or_ml_library():
    code = ("import sys, medmat.cli; heavy = [m for m in ('pydicom', 'nibabel', 'SimpleITK', 'torch', 'PIL', "
            "'datasets', 'transformers') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_answer_instruction_is_written_once():
    text = "Answer with the option's letter"
    hits = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if text in p.read_text(encoding="utf-8")]
    assert hits == ["mat/qa_format.py"], hits


def test_option_count_is_one_setting():
    five = QAFormat(option_count=5)
    labels = ["A1", "B2", "C3", "D4", "E5", "F6"]
    qa = make_qa(QASample("s/1", ["C3"]), QASettings("single-label", ["Which?"], labels, 1, five))
    assert len(qa.options) == 5 and qa.answer_choice in "ABCDE"
    question, options = parse_question_choice(qa.question_choice, five)
    assert list(options) == list("ABCDE") and options[qa.answer_choice] == "C3"


def test_row_constructor_refuses_missing_and_unknown_keys():
    row = make_row(**dict.fromkeys(COLUMNS))
    assert list(row) == list(COLUMNS)
    with pytest.raises(RowError, match="missing"):
        make_row(**{c: None for c in COLUMNS[1:]})
    with pytest.raises(RowError, match="labelz"):
        make_row(**dict.fromkeys(COLUMNS), labelz=[])


def test_reconciled_turns_false_when_the_accounting_is_broken(tmp_path, monkeypatch):
    """An adapter that forgets a file (drops an entry) must not be reported as reconciled."""
    from medmat import sources
    from medmat.prepare.source import BuildOptions, build_source
    from medmat.validation import validate
    from tests.fakes import materialise

    reg, _ = validate(None)
    materialise("kvasir", tmp_path / "data")
    good = build_source(reg, "kvasir", tmp_path / "data", tmp_path / "out", BuildOptions(progress=False))
    assert good["reconciled"] and good["files"]["unaccounted"] == 0
    assert good["files"]["on_disk"] == sum(1 for p in (tmp_path / "data" / "kvasir").rglob("*") if p.is_file())

    real = sources.Adapter.entries

    def forgetful(self, source_dir):
        entries = list(real(self, source_dir))
        return iter(entries[1:])  # the first file silently vanishes

    monkeypatch.setattr(sources.Adapter, "entries", forgetful)
    bad = build_source(reg, "kvasir", tmp_path / "data", tmp_path / "out2", BuildOptions(progress=False))
    assert bad["reconciled"] is False
    assert bad["files"]["unaccounted"] == 1 and len(bad["files"]["unaccounted_files"]) == 1


def test_ledger_reports_hidden_files_links_and_fifos(tmp_path):
    import os

    from medmat.prepare.source import BuildOptions, build_source
    from medmat.validation import validate
    from tests.fakes import materialise

    reg, _ = validate(None)
    materialise("kvasir", tmp_path / "data")
    root = tmp_path / "data" / "kvasir"
    first = sorted(root.rglob("*.jpg"))[0]
    inner = first.parent  # inside layout.root, where the adapter looks
    (inner / ".DS_Store").write_bytes(b"x")
    (inner / "__MACOSX").mkdir()
    (inner / "__MACOSX" / "._a.jpg").write_bytes(b"x")
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"not yours")
    (inner / "link.jpg").symlink_to(outside)
    os.mkfifo(inner / "pipe.jpg")
    report = build_source(reg, "kvasir", tmp_path / "data", tmp_path / "out", BuildOptions(progress=False))
    reasons = {e["path"].rsplit("/", 1)[-1]: e["reason"] for e in report["excluded_files"]}
    assert report["reconciled"], report["files"]
    assert "symbolic link" in reasons["link.jpg"]
    assert "not a regular file" in reasons["pipe.jpg"]
    assert "metadata" in reasons[".DS_Store"] and "metadata" in reasons["._a.jpg"]
    assert report["written"] == sum(1 for p in root.rglob("*.jpg") if p.is_file() and not p.is_symlink()
                                    and "__MACOSX" not in p.parts and p.name != "pipe.jpg")
