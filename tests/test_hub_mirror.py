"""A built hub served through a real Hub-protocol server on 127.0.0.1 (olah, a self-hosted Hugging Face mirror,
serving the folder as a git repo, offline) and read the way a Hub user reads it: `HF_ENDPOINT` pointed at it,
`get_dataset_config_names`, `load_dataset` of subset, paper, source and CG configs and of the default config,
`streaming=True`, images and volumes decoded, and each config downloading only its own shards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml

from medmat.hub import build_hub
from medmat.prepare.source import BuildOptions, build_source
from medmat.validation import validate
from tests.fakes import materialise, package_file

from .hf_mirror import HubMirror

pytest.importorskip("olah")
REGISTRY, _ = validate()
REPO = "medmat-test/Med-MAT"
SUBSETS = ["03", "04", "05", "06", "46"]  # the CT subsets of CG experiment two-01 (Table 3) + a 3D MRI subset
ROOT = Path(__file__).resolve().parents[1]

CLIENT = r'''
import json, sys, time
import nibabel as nib
from datasets import get_dataset_config_names, load_dataset
repo, configs = sys.argv[1], sys.argv[2:]
out = {}
t = time.perf_counter()
out["names"] = get_dataset_config_names(repo)
out["names_s"] = time.perf_counter() - t
t = time.perf_counter()
default = load_dataset(repo, split="train")
out["default"] = {"seconds": time.perf_counter() - t, "subsets": sorted(set(default["subset"]))}
for config in configs:
    t = time.perf_counter()
    ds = load_dataset(repo, config)
    seconds = time.perf_counter() - t
    rows = {split: sorted(part["id"]) for split, part in ds.items()}
    first = ds["train"][0]
    info = {"seconds": seconds, "rows": rows, "image": list(first["image"].size) if first["image"] else None}
    volumes = [r for r in ds["train"] if r["volume"] is not None]
    if volumes:
        v = volumes[0]["volume"]
        info["volume"] = {"nifti1": isinstance(v, nib.Nifti1Image), "shape": list(v.shape), "affine": v.affine.tolist(),
                          "axcodes": list(nib.aff2axcodes(v.affine)), "id": volumes[0]["id"]}
    stream = load_dataset(repo, config, streaming=True)
    info["stream"] = {split: sorted(r["id"] for r in part) for split, part in stream.items()}
    out[config] = info
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mirror-hub")
    for sub in SUBSETS:
        for source_id in REGISTRY.subsets[sub].sources:
            materialise(source_id, tmp / "data")
            build_source(REGISTRY, source_id, tmp / "data", tmp / "out", BuildOptions(progress=False))
    build_hub(REGISTRY, tmp / "out", SUBSETS, repo_id=REPO)  # a local build: the 3D pixels are kept
    return tmp / "out" / "hub"


@pytest.fixture(scope="module")
def served(hub, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mirror")
    mirror = HubMirror(tmp)
    mirror.add(hub, REPO)
    configs = ["subset-03", "subset-04-paper", "source-duke-liver-mri-v1", "cg-two-01"]
    home = tmp / "hf-home"
    with mirror:
        done = subprocess.run([sys.executable, "-c", CLIENT, REPO, *configs], capture_output=True, text=True,
                              timeout=600, env=mirror.env(home) | {"PYTHONPATH": str(ROOT)}, cwd=tmp)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), home


def _local_ids(hub: Path, config: str) -> dict[str, list[str]]:
    from datasets import load_dataset

    ds = load_dataset(str(hub), config)
    return {split: sorted(part["id"]) for split, part in ds.items()}


def test_every_config_is_listed_and_loads_as_from_the_folder(hub, served):
    result, _ = served
    card = yaml.safe_load((hub / "README.md").read_text().split("---")[1])
    assert result["names"] == [c["config_name"] for c in card["configs"]]
    for config in ("subset-03", "subset-04-paper", "source-duke-liver-mri-v1", "cg-two-01"):
        assert result[config]["rows"] == _local_ids(hub, config), config
        assert result[config]["stream"] == result[config]["rows"], config  # streaming=True reads the same rows
    assert result["cg-two-01"]["rows"]["train"] and result["cg-two-01"]["rows"]["test"]
    # Without a config name, the card's `default: true` config loads (not a list of 295 names).
    assert result["default"]["subsets"] == ["03"]


def test_images_and_volumes_decode_with_the_right_affine(served):
    result, _ = served
    assert result["subset-03"]["image"][0] > 0
    volume = result["source-duke-liver-mri-v1"]["volume"]
    assert volume["nifti1"] and volume["axcodes"] == ["R", "A", "S"]  # canonical orientation
    # Expected voxel size from outside the code: pydicom's MR_small.dcm header (in-plane) and the slice positions
    # 5, 10, 15 mm of tests/fixtures/sources/duke-liver-mri-v1/fake.yaml (through-plane).
    header = pydicom.dcmread(package_file("pydicom:data/test_files/MR_small.dcm"))
    affine = np.array(volume["affine"])
    voxel = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    assert sorted(np.round(voxel, 4).tolist()) == sorted([float(header.PixelSpacing[0]), float(header.PixelSpacing[1]),
                                                          5.0])
    assert 3 in volume["shape"]  # three slices per series in the fake archive


def test_one_config_downloads_only_its_own_shards(hub, served):
    _, home = served
    snapshot = next((home / "hub").glob("datasets--medmat-test--Med-MAT/snapshots/*"))
    fetched = {p.relative_to(snapshot).parts[1] for p in snapshot.glob("data/*/*/*.parquet")}
    card = yaml.safe_load((hub / "README.md").read_text().split("---")[1])
    wanted = set()
    for config in card["configs"]:
        if config["config_name"] in ("subset-03", "subset-04-paper", "source-duke-liver-mri-v1", "cg-two-01") or \
                config.get("default"):
            for part in config["data_files"]:
                for path in [part["path"]] if isinstance(part["path"], str) else part["path"]:
                    wanted.add(path.split("/")[1])
    assert fetched == wanted and len(list((hub / "data").iterdir())) > len(wanted)
