"""`medmat build all` over the fake archives of every source: the whole registry in one Hub folder."""

from __future__ import annotations

import glob
import json

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_dataset
from typer.testing import CliRunner

from medmat.cli import app
from medmat.validation import check_hub_options, validate
from tests.fakes import fixture_ids, materialise

REGISTRY, _ = validate()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("all")
    for source_id in fixture_ids():
        materialise(source_id, tmp / "data")
    result = CliRunner().invoke(app, ["build", "all", "--data-dir", str(tmp / "data"), "--out", str(tmp / "out"),
                                      "--num-proc", "2"])
    assert result.exit_code == 0, result.output
    return tmp / "out" / "hub"


def test_every_config_has_its_exact_counts(hub):
    card = yaml.safe_load((hub / "README.md").read_text().split("---")[1])
    counts = {i["config_name"]: {s["name"]: s["num_examples"] for s in i["splits"]} for i in card["dataset_info"]}
    names = [c["config_name"] for c in card["configs"]]
    assert len(names) == len(set(names)) == len(counts)
    built_subsets = {n.split("-")[1] for n in names if n.startswith("subset-")}
    # Every subset but 40, whose only source (m2caiseg) cannot be built until its mask colours are known.
    assert sorted(set(REGISTRY.subsets) - built_subsets) == ["40"]
    assert sum(n.startswith("source-") for n in names) == 107  # all but the two sources that cannot build yet
    assert sum(n.startswith("cg-") for n in names) > 40
    for config in card["configs"]:
        for part in config["data_files"]:
            paths = part["path"] if isinstance(part["path"], list) else [part["path"]]
            files = [f for p in paths for f in glob.glob(str(hub / p))]
            rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            assert rows == counts[config["config_name"]][part["split"]], (config["config_name"], part["split"])


@pytest.mark.parametrize("config", ["subset-31", "subset-50-paper", "source-siim-acr-pneumothorax", "cg-two-01"])
def test_configs_load(hub, config):
    ds = load_dataset(str(hub), config)
    assert all(len(split) > 0 for split in ds.values())


def test_no_question_of_any_built_subset_holds_two_right_answers(hub):
    # every option set of every subset config against the subset manifests' label relations (issue 11)
    assert check_hub_options(REGISTRY, hub) == []


def test_split_statistics_cover_every_built_subset(hub):
    stats = json.loads((hub / "split_stats.json").read_text())
    card = yaml.safe_load((hub / "README.md").read_text().split("---")[1])
    built = {c["config_name"].split("-")[1] for c in card["configs"] if c["config_name"].startswith("subset-")}
    assert set(stats) == built
    for sid, s in stats.items():
        assert s["samples"] == s["splits"]["train"] + s["splits"]["test"]
        if s["splits"]["test"] == 0:
            assert any("no test split" in w for w in s["warnings"]), sid
        if s["components"] >= 2:  # every subset with two or more linked components has both sides
            assert s["splits"]["test"] and s["splits"]["train"], (sid, s["splits"], s["split_rules"])
