"""Splits and questions of subsets built from the fake archives (issue 11).

The five sources the issue names (upstream rows 24, 31, 51, 71, 77) publish train + validation and no test split;
their fakes lay the archives out that way (tests/fixtures/sources/<id>/fake.yaml), so the expected test samples
are the fakes' validation files, counted from the fixture, not from the code under test."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from medmat.hub import build_hub
from medmat.prepare.source import BuildOptions, build_source
from medmat.validation import check_hub_options, validate
from tests.fakes import FIXTURES, materialise

REGISTRY, _ = validate()
TRAIN_VAL_ONLY = {24: "multi-label-retinal-diseases", 31: "glaucoma-detection-kaggle", 51: "fracture-detection-xray",
                  71: "isic-2018-task3", 77: "chexpert-small"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trainval")
    data, out = tmp / "data", tmp / "out"
    for source_id in TRAIN_VAL_ONLY.values():
        materialise(source_id, data)
        build_source(REGISTRY, source_id, data, out, BuildOptions(num_proc=1, progress=False))
    subsets = sorted({REGISTRY.subset_of(s)[0].id for s in TRAIN_VAL_ONLY.values()})
    build_hub(REGISTRY, out, subsets)
    return out / "hub", subsets


def _rows(hub, config, split):
    files = sorted((hub / "data" / config / split).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f, columns=["id", "original_split", "labels"]).to_pylist()]


def test_the_manifests_say_train_and_validation_only():
    for row, source_id in TRAIN_VAL_ONLY.items():
        source = REGISTRY.sources[source_id]
        assert source.upstream.row == row
        names = [n.lower() for n in source.splits.upstream_names]
        assert not any("test" in n for n in names) and any(n.startswith("val") for n in names), names


@pytest.mark.parametrize("source_id", sorted(TRAIN_VAL_ONLY.values()))
def test_a_train_and_validation_only_source_gets_a_test_split(built, source_id):
    hub, _ = built
    subset = REGISTRY.subset_of(source_id)[0].id
    test = [r for r in _rows(hub, f"subset-{subset}", "test") if r["id"].startswith(source_id + "/")]
    train = [r for r in _rows(hub, f"subset-{subset}", "train") if r["id"].startswith(source_id + "/")]
    assert test, f"subset {subset} has no test sample of {source_id}"
    assert all(r["original_split"].lower().startswith("val") for r in test)
    assert not any(r["original_split"].lower().startswith("val") for r in train)
    # the fake's validation images (fixture listing) are exactly the test side, less any left out as unusable
    spec = yaml.safe_load((FIXTURES / source_id / "fake.yaml").read_text())
    listed = [i if isinstance(i, str) else i["path"] for i in spec.get("images", [])]
    val_images = [p for p in listed if re.search(r"(^|[/_])val(id|idation)?([/_]|$)", p, re.IGNORECASE)]
    if not val_images:  # the split is a label table (MuReD's val.csv): its rows, less the header
        val_images = [line for name, text in spec.get("files", {}).items() if re.match(r"val", Path(name).name)
                      for line in text.strip().splitlines()[1:]]
    assert 0 < len(test) <= len(val_images)


def test_split_statistics_are_written_for_every_built_subset(built):
    hub, subsets = built
    stats = json.loads((hub / "split_stats.json").read_text())
    assert sorted(stats) == subsets
    for sid, s in stats.items():
        assert s["splits"]["test"] > 0 and not any("no test split" in w for w in s["warnings"])
        assert set(s["links"]) == {"group", "exact", "near"}
        assert s["samples"] == s["splits"]["train"] + s["splits"]["test"]
        assert 0 < s["largest_component_share"] <= 1 and s["labels"]["test"]
        rows = sum(len(_rows(hub, f"subset-{sid}", split)) for split in ("train", "test"))
        assert rows == s["samples"]


def test_no_built_question_holds_two_right_answers(built):
    hub, _ = built
    assert check_hub_options(REGISTRY, hub) == []


def test_info_shows_the_split_statistics(built):
    from typer.testing import CliRunner

    from medmat.cli import app

    hub, subsets = built
    result = CliRunner().invoke(app, ["info", subsets[0], "--hub", str(hub)])
    assert result.exit_code == 0, result.output
    assert "test share" in result.output and "components" in result.output and "links: group" in result.output
