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


def _build(tmp, num_proc=1, publishable=False, subsets=SUBSETS, figures=False):
    data, out = tmp / "data", tmp / "out"
    for sub in subsets:
        for source_id in REGISTRY.subsets[sub].sources:
            if not (data / source_id).exists():
                materialise(source_id, data)
            build_source(REGISTRY, source_id, data, out, BuildOptions(num_proc=num_proc, progress=False))
    build_hub(REGISTRY, out, subsets, publishable=publishable, repo_id="medmat-test/Med-MAT" if publishable else None,
              figures=figures)
    return out / "hub"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("hub"), figures=True)  # the montage tests need them


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


@pytest.fixture(scope="module")
def public_hub(tmp_path_factory):
    """Publishable, with subset 22 added: its brain-tumor-mri-4-classes is CC0 (redistributable), its other source
    is not."""
    return _build(tmp_path_factory.mktemp("public"), publishable=True, subsets=SUBSETS + ["22"], figures=True)


def _rows(root, source_id, columns=("image", "pixels_withheld"), subset="30"):
    files = sorted((root / "data" / f"subset-{subset}").glob(f"*/{source_id}-*.parquet"))
    return [r for f in files for r in pq.read_table(f, columns=list(columns)).to_pylist()]


def test_local_build_keeps_every_pixel_and_publishable_marks_what_it_leaves_out(hub, public_hub):
    assert not REGISTRY.sources["shenzhen-cxr"].redistributable  # manifests/licenses.yaml: unknown -> forbidden
    assert REGISTRY.sources["brain-tumor-mri-4-classes"].redistributable  # cc0-1.0
    local = _rows(hub, "shenzhen-cxr")
    assert local and all(r["image"] and r["image"]["bytes"] and r["pixels_withheld"] is None for r in local)
    public = _rows(public_hub, "shenzhen-cxr")
    assert len(public) == len(local) and all(r["image"] is None for r in public)
    assert all("license unknown" in r["pixels_withheld"] and "medmat build shenzhen-cxr" in r["pixels_withheld"]
               for r in public)
    kept = _rows(public_hub, "brain-tumor-mri-4-classes", subset="22")
    assert kept and all(r["image"]["bytes"] and r["pixels_withheld"] is None for r in kept)
    # The montages of a publishable folder show no pixel of a non-redistributable source; a local one may.
    from medmat.hub.figures import montage_sources

    shown = {s for p in (public_hub / "assets").glob("montage-*.png") for s in montage_sources(p)}
    assert shown == {"brain-tumor-mri-4-classes"}
    assert "shenzhen-cxr" in {s for p in (hub / "assets").glob("montage-*.png") for s in montage_sources(p)}


def test_card_states_the_pixels_policy_on_top(hub, public_hub):
    def top(folder):
        body = (folder / "README.md").read_text().split("\n---\n", 1)[1]
        return body[:body.index("## MAT coverage")]

    def marked(folder):  # counted from the rows themselves: (rows, sources) without pixels
        rows = [r for p in (folder / "data").glob("subset-*[0-9]/*/*.parquet")
                for r in pq.read_table(p, columns=["source_id", "image", "pixels_withheld"]).to_pylist()]
        gone = [r for r in rows if r["image"] is None and r["pixels_withheld"]]
        return len(gone), len({r["source_id"] for r in gone})

    rows, sources = marked(public_hub)
    assert rows and f"{rows} rows of {sources} sources" in top(public_hub) and "**no pixels**" in top(public_hub)
    assert marked(hub) == (0, 0) and "local build" in top(hub) and "`medmat publish` refuses it" in top(hub)


def test_card_has_figure_licenses_and_citations(public_hub):
    text = (public_hub / "README.md").read_text()
    assert (public_hub / "assets" / "mat-coverage.png").stat().st_size > 1000
    assert "| 54 | [" in text and "rebuild locally" in text and "@" in text.split("## Citations")[1]
    assert "shenzhen-cxr" in text.split("Rebuilding pixels")[1]
    citations = text.split("## Citations")[1]
    assert "cai-etal-2025-exploring" in citations and "2412.20070" in citations  # the Med-MAT paper first


def _digests(hub):
    return {str(p.relative_to(hub)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(hub.rglob("*")) if p.is_file()}


def test_one_and_two_workers_give_identical_hub(hub, tmp_path):
    assert _digests(_build(tmp_path, num_proc=2, figures=True)) == _digests(hub)


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
    configs = {c["config_name"]: {f["split"]: f["path"] for f in c["data_files"]} for c in _card(ct_hub)["configs"]}
    listed = lambda path: path if isinstance(path, list) else [path]  # noqa: E731
    # The paper flavour's files are part of the full flavour's (no pixel stored twice), named <source>-paper-NNNNN.
    assert listed(paths["train"]) == listed(configs["subset-03-paper"]["train"]) + listed(
        configs["subset-06-paper"]["train"])
    assert listed(paths["test"]) == listed(configs["subset-04-paper"]["test"])
    assert all(p.startswith(("data/subset-03/train/", "data/subset-06/train/")) and "-paper-" in p
               for p in listed(paths["train"]))
    ds = load_dataset(str(ct_hub), "cg-two-01")
    assert set(ds["train"]["subset"]) == {"03", "06"} and set(ds["test"]["subset"]) == {"04"}
    assert not set(ds["train"]["pixel_sha256"]) & set(ds["test"]["pixel_sha256"])
    stream = load_dataset(str(ct_hub), "cg-two-01", split="test", streaming=True)
    assert next(iter(stream))["subset"] == "04"


def test_card_metadata_is_what_the_hub_card_spec_asks_for(public_hub):
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(public_hub / "README.md")  # parses as the Hub does; round-trips unchanged
    assert DatasetCard(str(card)).data.to_dict() == card.data.to_dict()
    meta = card.data.to_dict()
    # The sources' licenses (manifests/licenses.yaml) are mixed: `other`, with the name and the per-source table.
    assert meta["license"] == "other" and meta["license_name"] == "med-mat-per-source"
    assert meta["license_link"] == "LICENSES.md"
    licenses = (public_hub / "LICENSES.md").read_text()
    for sub in SUBSETS + ["22"]:
        for sid in REGISTRY.subsets[sub].sources:
            assert f"(`{sid}`) | `{REGISTRY.sources[sid].license}` |" in licenses
    assert "| `cc0-1.0` | [Creative Commons Zero v1.0 Universal]" in licenses
    assert meta["language"] == ["en"] and meta["pretty_name"]
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (public_hub / "data").glob("subset-*[0-9]/*/*.parquet"))
    assert meta["size_categories"] == ["n<1K" if rows < 1000 else "1K<n<10K"]
    assert len(meta["source_datasets"]) == sum(len(REGISTRY.subsets[s].sources) for s in SUBSETS + ["22"])
    assert "arxiv:2412.20070" in meta["tags"] and "https://arxiv.org/abs/2412.20070" in str(card)
    assert "https://github.com)" not in str(card) and "<org>" not in str(card)
    assert 'load_dataset("medmat-test/Med-MAT", "subset-02")' in str(card)
    defaults = [c["config_name"] for c in meta["configs"] if c.get("default")]
    assert defaults == ["subset-02"] and MetadataConfigs.from_dataset_card_data(card.data).get_default_config_name() \
        == "subset-02"
    # dataset_info: exact counts and real sizes, no repeated feature lists (the Parquet files carry the features).
    infos = DatasetInfosDict.from_dataset_card_data(card.data)
    assert all(info.features is None for info in infos.values())
    assert "features:" not in str(card).split("\n---\n")[0]
    for config in meta["configs"]:
        info = infos[config["config_name"]]
        files = sorted({f for part in config["data_files"]
                        for pattern in ([part["path"]] if isinstance(part["path"], str) else part["path"])
                        for f in public_hub.glob(pattern)})
        assert info.download_size == sum(f.stat().st_size for f in files) > 0
        for split in info.splits.values():
            assert split.num_bytes > 0
        assert info.dataset_size == sum(s.num_bytes for s in info.splits.values())


def test_shards_are_sized_by_bytes_with_a_page_index(hub):
    from medmat.shards import ROW_GROUP_BYTES

    for path in sorted((hub / "data").rglob("*.parquet")):
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).has_offset_index, path  # the page index `datasets` writes
        for g in range(meta.num_row_groups):
            assert meta.row_group(g).total_byte_size <= ROW_GROUP_BYTES
        image = next(i for i in range(meta.num_columns) if meta.row_group(0).column(i).path_in_schema == "image.bytes")
        assert meta.row_group(0).column(image).compression == "UNCOMPRESSED"  # already PNG/JPEG


def test_croissant_validates_with_mlcroissant(public_hub):
    import json

    mlc = pytest.importorskip("mlcroissant")
    dataset = mlc.Dataset(jsonld=public_hub / "croissant.json")  # raises ValidationError on any error
    card = _card(public_hub)
    names = [c["config_name"] for c in card["configs"]]
    record_sets = {r.uuid: r for r in dataset.metadata.record_sets}
    assert set(record_sets) == set(names) | {f"{n}_splits" for n in names}
    doc = json.loads((public_hub / "croissant.json").read_text())
    filesets = {d["@id"]: d for d in doc["distribution"] if d["@type"] == "cr:FileSet"}
    for config in card["configs"]:
        patterns = [p for part in config["data_files"]
                    for p in ([part["path"]] if isinstance(part["path"], str) else part["path"])]
        included = filesets[f"parquet-files-for-config-{config['config_name']}"]["includes"]
        assert ([included] if isinstance(included, str) else included) == patterns
    fields = {f["name"]: f for f in next(r for r in doc["recordSet"] if r["@id"] == "subset-02")["field"]}
    assert set(fields) == set(MAT_FEATURES)
    assert fields["image"]["dataType"] == "sc:ImageObject"
    assert [s["name"] for s in fields["volume"]["subField"]] == ["bytes", "path"]  # no NIfTI type in Croissant
    assert fields["labels"]["isArray"] and [s["name"] for s in fields["boxes"]["subField"]][0] == "label"
    assert "cai-etal-2025-exploring" in doc["citeAs"]
    assert sorted(doc["license"]) == sorted({str(REGISTRY.sources[s].license_url or REGISTRY.licenses.licenses[
        REGISTRY.sources[s].license].url) for sub in SUBSETS + ["22"] for s in REGISTRY.subsets[sub].sources})


def test_publish_refuses_a_local_build_and_accepts_a_publishable_one_from_the_same_sources(hub, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from medmat.cli import app
    from medmat.hub.publish import PublishError, check_hub_folder

    out = tmp_path / "out"
    shutil.copytree(hub.parent / "sources", out / "sources")
    runner = CliRunner()
    local = runner.invoke(app, ["build", *SUBSETS, "--out", str(out), "--hub-only"])
    assert local.exit_code == 0, local.output
    assert "local build" in local.output
    with pytest.raises(PublishError, match=r"holds pixels of 6 source\(s\) .*--publishable"):
        check_hub_folder(out / "hub", "medmat-test/Med-MAT")  # no network: the checks read the folder only
    assert runner.invoke(app, ["build", *SUBSETS, "--out", str(out), "--hub-only", "--publishable"]).exit_code == 2
    public = runner.invoke(app, ["build", *SUBSETS, "--out", str(out), "--hub-only", "--publishable",
                                 "--repo", "medmat-test/Med-MAT"])
    assert public.exit_code == 0, public.output
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (out / "hub" / "data").glob("subset-*[0-9]/*/*.parquet"))
    assert f"pixels left out of {rows} rows of 6" in public.output  # none of the six sources may be republished
    assert "subset-02" in check_hub_folder(out / "hub", "medmat-test/Med-MAT")
    with pytest.raises(PublishError, match="its example loads 'medmat-test/Med-MAT', not 'someone/else'"):
        check_hub_folder(out / "hub", "someone/else")


def test_croissant_of_a_local_folder_reads_the_same_rows(hub):
    """Without a repo, file sets are relative to croissant.json, so mlcroissant itself can read the records."""
    mlc = pytest.importorskip("mlcroissant")
    dataset = mlc.Dataset(jsonld=hub / "croissant.json")
    for config in ("subset-30", "source-shenzhen-cxr"):
        records = list(dataset.records(record_set=config))
        entry = next(c for c in _card(hub)["configs"] if c["config_name"] == config)
        files = [f for part in entry["data_files"]
                 for p in ([part["path"]] if isinstance(part["path"], str) else part["path"]) for f in hub.glob(p)]
        rows = [r for f in files for r in pq.read_table(f, columns=["id", "width", "height"]).to_pylist()]
        assert sorted(r[f"{config}/id"].decode() for r in records) == sorted(r["id"] for r in rows)
        sizes = {r["id"]: (r["width"], r["height"]) for r in rows}
        for record in records:
            assert record[f"{config}/image"].size == sizes[record[f"{config}/id"].decode()]
