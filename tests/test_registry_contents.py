"""The shipped registry: complete, consistent with the upstream tables, errata corrected."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from medmat.cli import app
from medmat.validation import validate
from tests.conftest import MANIFESTS

UPSTREAM_SOURCES = list(csv.DictReader(open(MANIFESTS / "upstream" / "upstream-sources.csv", encoding="utf-8")))
UPSTREAM_SUBSETS = list(csv.DictReader(open(MANIFESTS / "upstream" / "upstream-subsets.csv", encoding="utf-8")))


@pytest.fixture(scope="module")
def registry():
    reg, problems = validate()
    assert problems == [], "\n".join(map(str, problems))
    return reg


def _row_number(row: dict, index: int) -> int:
    # Row 57 (COVIDGR) is the only unnumbered upstream row; it sits at position 57.
    return int(row["row_no"]) if row["row_no"] else index + 1


def test_counts(registry):
    assert len(registry.sources) == 109
    assert len(registry.subsets) == 53
    assert sorted(registry.subsets) == [f"{i:02d}" for i in range(1, 54)]


@pytest.mark.parametrize("index", range(len(UPSTREAM_SOURCES)))
def test_upstream_block_is_verbatim(registry, index):
    row = UPSTREAM_SOURCES[index]
    number = _row_number(row, index)
    matches = [s for s in registry.sources.values() if s.upstream.row == number]
    assert len(matches) == 1, f"row {number} has {len(matches)} manifests"
    up = matches[0].upstream
    assert (up.name, up.url, up.modality, up.area, up.task, up.qa_file) == (
        row["name"], row["url"], row["modality"], row["area"], row["task"], row["upstream_qa_file"])


@pytest.mark.parametrize("row", UPSTREAM_SUBSETS, ids=[r["subset"] for r in UPSTREAM_SUBSETS])
def test_subset_paper_facts(registry, row):
    sub = registry.subsets[row["subset"]]
    assert sub.modality == row["modality"]
    assert sub.paper.source_rows == [int(x) for x in row["source_rows_per_paper"].split(",")]
    assert sub.role == row["paper_split_role"]
    expected_acc = float(row["paper_llava_zero_shot_acc"]) if row["paper_llava_zero_shot_acc"] else None
    assert sub.paper.llava_zero_shot_acc == expected_acc


def _by_row(registry, row):
    return next(s for s in registry.sources.values() if s.upstream.row == row)


def _home(registry, row):
    src = _by_row(registry, row)
    homes = registry.subset_of(src.id)
    assert len(homes) == 1
    return homes[0].id


def test_erratum_row_57_numbered(registry):
    src = _by_row(registry, 57)
    assert "COVIDGR" in src.upstream.name
    assert any(c.field == "upstream.row" for c in src.corrections)


@pytest.mark.parametrize("row, fields", [(46, {"name", "url"}), (50, {"url"}), (32, {"url"})])
def test_errata_links_corrected(registry, row, fields):
    src = _by_row(registry, row)
    corrected = {c.field.split(".")[-1] for c in src.corrections}
    assert fields <= corrected, f"row {row} corrections: {corrected}"
    assert str(src.homepage).rstrip("/") != src.upstream.url.rstrip("/")


def test_erratum_airogs_points_at_the_cited_record(registry):
    src = _by_row(registry, 32)
    assert "5793241" in str(src.homepage) + " ".join(str(f.url) for f in src.files)


def test_errata_unassigned_sources_mapped(registry):
    assert _home(registry, 64) == "08"
    assert _home(registry, 43) == "18"
    assert _home(registry, 83) == "18"
    assert _home(registry, 44) == "22"
    assert "18" in {c.field for c in registry.subsets["18"].corrections} or registry.subsets["18"].corrections


def test_erratum_subset_43_is_breast(registry):
    sub = registry.subsets["43"]
    assert sub.area == "breast"
    assert any(c.field == "area" for c in sub.corrections)


def test_every_source_is_in_the_subset_of_its_triplet(registry):
    for src in registry.sources.values():
        (home,) = registry.subset_of(src.id)
        assert (home.modality, home.area, home.task) == (src.modality, src.area, src.task)


def test_multi_label_subsets_ask_for_normal(registry):
    multi = [s for s in registry.subsets.values() if s.task_type.value == "multi-label"]
    assert multi
    for sub in multi:
        assert all("Normal" in text for text in sub.instructions)


def test_list_json_emits_everything():
    result = CliRunner().invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["sources"]) == 109 and len(data["subsets"]) == 53
    rows = [s["row"] for s in data["sources"]]
    assert rows == sorted(rows) == list(range(1, 110))
    assert {"modality", "area", "task", "access", "license", "redistributable", "task_type"} <= set(data["sources"][0])


def test_list_table():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    assert "53 subsets" in result.output and "109 sources" in result.output


@pytest.mark.parametrize("name, words", [("02", "kidney-diseases"), ("ct-kidney-normal-cyst-tumor-stone", "Citation"),
                                         ("r57", "COVIDGR"), ("2", "Instructions")])
def test_info(name, words):
    result = CliRunner().invoke(app, ["info", name], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert words in result.output


def test_info_json_round_trips():
    result = CliRunner().invoke(app, ["info", "02", "--json"])
    assert json.loads(result.output)["id"] == "02"


def test_info_unknown_lists_choices():
    result = CliRunner().invoke(app, ["info", "nope"])
    assert result.exit_code == 2
    assert "subsets: 01, 02" in result.output


def test_validate_cli_ok():
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert "109 sources, 53 subsets" in result.output


def test_validate_cli_fails_naming_file(mini_copy):
    mini_copy.edit("subsets/02-*.yaml", lambda d: d.update(instructions=d["instructions"][:3]))
    result = CliRunner().invoke(app, ["validate", str(mini_copy.root)])
    assert result.exit_code == 1
    assert "subsets/02-" in result.output and "instructions" in result.output
