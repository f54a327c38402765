"""Issue 15: evidence blocks are shown by `list`/`info` and required by `validate` (switch: REQUIRE_EVIDENCE)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from medmat.cli import app
from medmat.registry import checks, load_registry
from medmat.validation import validate
from tests.conftest import TEMPLATE_SOURCE

SRC = f"sources/{TEMPLATE_SOURCE}.yaml"
runner = CliRunner()
TOP = {"fact": "top-folders", "claim": "one folder per class", "strength": "confirmed",
       "where": "https://www.kaggle.com/datasets/nazmul0087/ct-kidney-dataset-normal-cyst-tumor-and-stone"}


def _problems(mini_copy, monkeypatch, evidence, required=True):
    monkeypatch.setattr(checks, "REQUIRE_EVIDENCE", required)
    mini_copy.edit(SRC, lambda d: d.update(evidence=evidence))
    _, problems = validate(mini_copy.root)
    return [p for p in problems if p.field.startswith("evidence")]


def test_missing_block_is_a_problem_when_required(mini_copy, monkeypatch):
    (problem,) = _problems(mini_copy, monkeypatch, [])
    assert TEMPLATE_SOURCE in problem.file and "no evidence block" in problem.message
    assert "docs/maintainers.md" in problem.fix


def test_block_must_cover_top_folders(mini_copy, monkeypatch):
    naming = dict(TOP, fact="file-naming")
    (problem,) = _problems(mini_copy, monkeypatch, [naming])
    assert "top-folders" in problem.message
    assert _problems(mini_copy, monkeypatch, [naming, TOP]) == []


def test_switch_off_accepts_a_missing_block(mini_copy, monkeypatch):
    assert _problems(mini_copy, monkeypatch, [], required=False) == []


def test_where_must_be_a_url_or_a_repository_path(mini_copy, monkeypatch):
    bad = dict(TOP, where="the Kaggle page")
    (problem,) = _problems(mini_copy, monkeypatch, [bad], required=False)
    assert problem.field == "evidence[0].where" and "owner/repo:path" in problem.fix
    code = dict(TOP, where="mlmed/torchxrayvision:torchxrayvision/datasets.py#L120-L131@abc123")
    assert _problems(mini_copy, monkeypatch, [code], required=False) == []


@pytest.mark.skipif(not checks.REQUIRE_EVIDENCE, reason="switched on when the last batch of evidence lands")
def test_every_shipped_source_has_evidence():
    _, problems = validate()
    assert [p for p in problems if p.field.startswith("evidence")] == []


def test_list_json_counts_facts_per_strength(mini_copy):
    rows = [TOP, dict(TOP, fact="file-naming", strength="inferred"), dict(TOP, fact="patient-ids",
                                                                         strength="unverified")]
    mini_copy.edit(SRC, lambda d: d.update(evidence=rows))
    result = runner.invoke(app, ["list", "--json", "--manifests", str(mini_copy.root)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["sources"]
    # Counted by hand from the three rows written above.
    assert row["evidence"] == {"confirmed": 1, "folder-level": 0, "inferred": 1, "unverified": 1, "total": 3}
    table = runner.invoke(app, ["list", "--manifests", str(mini_copy.root)], env={"COLUMNS": "250"})
    assert "1/3" in table.output and "1 confirmed, 0 folder-level, 1 inferred, 1 unverified" in table.output


def test_info_lists_each_fact_with_where_it_was_confirmed(mini_copy):
    mini_copy.edit(SRC, lambda d: d.update(evidence=[dict(TOP, shows="folders Normal/ Cyst/ Tumor/ Stone/")]))
    result = runner.invoke(app, ["info", TEMPLATE_SOURCE, "--manifests", str(mini_copy.root)],
                           env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "[confirmed] top-folders: one folder per class" in result.output
    assert "where: https://www.kaggle.com/datasets/nazmul0087" in result.output
    assert "shows: folders Normal/ Cyst/ Tumor/ Stone/" in result.output


def test_shipped_registry_counts_match_its_yaml():
    """The counts `list` shows equal a count made straight from the YAML text, not through the models."""
    import yaml

    from medmat.registry.summary import evidence_counts

    reg, _ = load_registry()
    for sid in reg.sources:
        raw = yaml.safe_load((reg.root / "sources" / f"{sid}.yaml").read_text(encoding="utf-8"))
        strengths = [e["strength"] for e in raw.get("evidence", [])]
        counts = evidence_counts(reg.sources[sid])
        assert counts["total"] == len(strengths)
        assert {k: counts[k] for k in set(strengths)} == {k: strengths.count(k) for k in set(strengths)}
