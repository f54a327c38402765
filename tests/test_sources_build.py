"""Every source builds from its fake archive (tests/fixtures/sources/<id>/fake.yaml) through its real adapter."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from medmat.prepare.source import BuildOptions, build_source
from medmat.validation import validate
from medmat.mat.schema import MAT_FEATURES
from tests.fakes import FIXTURES, load_spec, materialise

REGISTRY, PROBLEMS = validate()
SOURCE_IDS = sorted(REGISTRY.sources)


def test_registry_is_valid_for_building():
    assert PROBLEMS == []


@pytest.mark.parametrize("source_id", SOURCE_IDS)
def test_source_builds_from_fake_archive(source_id, tmp_path):
    assert (FIXTURES / source_id / "fake.yaml").is_file(), f"no fake archive for {source_id}"
    spec = load_spec(source_id)
    materialise(source_id, tmp_path / "data")
    report = build_source(REGISTRY, source_id, tmp_path / "data", tmp_path / "out", BuildOptions(progress=False))

    expect = spec["expect"]
    details = report["quarantined_files"] + report["excluded_files"]
    assert report["reconciled"]
    assert (report["written"], report["quarantined"], report["excluded"]) == (
        expect["written"], expect.get("quarantined", 0), expect.get("excluded", 0)), details
    assert report["labels"] == expect["labels"]

    source = REGISTRY.sources[source_id]
    (subset,) = REGISTRY.subset_of(source_id)
    if expect["written"] == 0:  # a source that cannot be built yet: every file accounted for, schema still written
        files = sorted((tmp_path / "out" / "sources" / source_id).glob("*.parquet"))
        assert [pq.read_schema(f).remove_metadata() for f in files] == [MAT_FEATURES.arrow_schema.remove_metadata()]
        return
    ds = load_dataset("parquet", data_files=str(tmp_path / "out" / "sources" / source_id / "*.parquet"),
                      split="train")
    assert ds.features == MAT_FEATURES
    assert len(ds) == expect["written"]
    for row in ds.select_columns(["source_id", "subset", "modality", "area", "task", "labels", "license", "volume",
                                  "boxes", "mask", "task_type"]):
        assert (row["source_id"], row["subset"], row["modality"], row["area"], row["task"], row["license"]) == (
            source_id, subset.id, source.modality, source.area, source.task, source.license)
        assert set(row["labels"]) <= set(subset.labels)
        if source.dimensionality == "3d":
            assert row["volume"] is not None
        if source.task_type.value in ("detection", "segmentation") and row["labels"]:
            assert row["boxes"], "a detection/segmentation sample with objects must have boxes"
