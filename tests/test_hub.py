"""The Hub folder built from fake archives: loadable configs, QA invariants, no leaks, exact counts, determinism."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_dataset

from medmat.prepare.source import BuildOptions, build_source
from medmat.hub import build_hub
from medmat.mat.qa import LETTERS
from medmat.validation import validate
from medmat.mat.schema import MAT_FEATURES
from tests.fakes import materialise

REGISTRY, _ = validate()
SUBSETS = ["02", "30", "39"]  # one source / three sources / segmentation


def _build(tmp, num_proc=1, keep_pixels=False):
    data, out = tmp / "data", tmp / "out"
    for sub in SUBSETS:
        for source_id in REGISTRY.subsets[sub].sources:
            if not (data / source_id).exists():
                materialise(source_id, data)
            build_source(REGISTRY, source_id, data, out, BuildOptions(num_proc=num_proc, progress=False))
    build_hub(REGISTRY, out, SUBSETS, keep_pixels=keep_pixels)
    return out / "hub"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("hub"))


def _card(hub):
    text = (hub / "README.md").read_text()
    return yaml.safe_load(text.split("---")[1])


def test_every_config_loads_with_the_mat_schema_and_exact_counts(hub):
    card = _card(hub)
    infos = {i["config_name"]: i for i in card["dataset_info"]}
    names = [c["config_name"] for c in card["configs"]]
    assert {"subset-02", "subset-30", "subset-39", "source-shenzhen-cxr", "source-kvasir-seg"} <= set(names)
    for name in names:
        ds = load_dataset(str(hub), name)
        assert all(split.features == MAT_FEATURES for split in ds.values())
        assert {s["name"]: s["num_examples"] for s in infos[name]["splits"]} == {k: len(v) for k, v in ds.items()}


def test_streaming(hub):
    stream = load_dataset(str(hub), "subset-30", streaming=True)
    first = next(iter(stream["train"]))
    assert first["subset"] == "30" and first["answer_choice"] in LETTERS


def test_qa_invariants(hub):
    for sub in SUBSETS:
        subset = REGISTRY.subsets[sub]
        for split in ("train", "test"):
            for path in sorted((hub / "data" / f"subset-{sub}" / split).glob("*.parquet")):
                for row in pq.read_table(path, columns=["answer", "options", "answer_choice", "question",
                                                        "task_type", "labels"]).to_pylist():
                    assert row["answer"] in row["options"] and len(row["options"]) <= 4
                    assert row["options"][LETTERS.index(row["answer_choice"])] == row["answer"]
                    assert row["question"] in subset.instructions
                    if row["task_type"] == "single-label":
                        assert set(row["options"]) <= set(subset.labels)


def test_no_image_in_both_train_and_test(hub):
    for config in (hub / "data").iterdir():
        sides = {}
        for split in ("train", "test"):
            sides[split] = {h for p in (config / split).glob("*.parquet")
                            for h in pq.read_table(p, columns=["pixel_sha256"]).column(0).to_pylist()}
        assert not sides["train"] & sides["test"], config.name


def test_pixels_only_where_the_license_allows(hub, tmp_path):
    def images(root, source_id):
        files = sorted((root / "data" / "subset-30").glob(f"*/{source_id}-*.parquet"))
        return [r["image"] for f in files for r in pq.read_table(f, columns=["image"]).to_pylist()]

    assert not REGISTRY.sources["shenzhen-cxr"].redistributable
    assert all(image is None for image in images(hub, "shenzhen-cxr"))
    kept = _build(tmp_path, keep_pixels=True)
    assert all(image and image["bytes"] for image in images(kept, "shenzhen-cxr"))


def test_card_has_figure_licenses_and_citations(hub):
    text = (hub / "README.md").read_text()
    assert (hub / "assets" / "mat-coverage.png").stat().st_size > 1000
    assert "| 54 | [" in text and "rebuild locally" in text and "@" in text.split("## Citations")[1]
    assert "medmat build shenzhen-cxr" in text or "shenzhen-cxr" in text.split("Rebuilding pixels")[1]


def _digests(hub):
    return {str(p.relative_to(hub)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(hub.rglob("*")) if p.is_file()}


def test_one_and_two_workers_give_identical_hub(hub, tmp_path):
    assert _digests(_build(tmp_path, num_proc=2)) == _digests(hub)


@pytest.fixture(scope="module")
def ct_hub(tmp_path_factory):
    """The four CT subsets: enough for the paper's two-source experiments 1-3 (Table 3)."""
    tmp = tmp_path_factory.mktemp("ct")
    subsets = ["03", "04", "05", "06"]
    for sub in subsets:
        for source_id in REGISTRY.subsets[sub].sources:
            materialise(source_id, tmp / "data")
            build_source(REGISTRY, source_id, tmp / "data", tmp / "out", BuildOptions(progress=False))
    build_hub(REGISTRY, tmp / "out", subsets)
    return tmp / "out" / "hub"


def test_cg_config_points_at_subset_shards_and_does_not_leak(ct_hub):
    config = next(c for c in _card(ct_hub)["configs"] if c["config_name"] == "cg-two-01")
    paths = {f["split"]: f["path"] for f in config["data_files"]}
    assert paths["train"] == ["data/subset-03-paper/train/*.parquet", "data/subset-06-paper/train/*.parquet"]
    assert paths["test"] == "data/subset-04-paper/test/*.parquet"
    ds = load_dataset(str(ct_hub), "cg-two-01")
    assert set(ds["train"]["subset"]) == {"03", "06"} and set(ds["test"]["subset"]) == {"04"}
    assert not set(ds["train"]["pixel_sha256"]) & set(ds["test"]["pixel_sha256"])
    stream = load_dataset(str(ct_hub), "cg-two-01", split="test", streaming=True)
    assert next(iter(stream))["subset"] == "04"
