"""Scale-out (issue 16): the Ray engine, a two-node Ray cluster and object storage all write byte for byte what
the local engine writes. Each test starts its own services on 127.0.0.1 and stops them."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from medmat.pipeline import build
from medmat.prepare.source import BuildOptions
from medmat.validation import validate
from tests.fakes import materialise

# Every Ray process of these tests binds to 127.0.0.1 (Ray otherwise picks the machine's LAN address); the
# variable must be set before Ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray")

# A small mix of layouts: class folders (JPEG), a label table, image + mask segmentation, DICOM, a 3D volume.
SOURCES = ["kvasir", "ct-kidney-normal-cyst-tumor-stone", "busi", "mias", "brain-tumor-dataset"]
REGISTRY, _ = validate(None)


def tree_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data_and_local(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale")
    for source in SOURCES:
        materialise(source, base / "data")
    result = build(REGISTRY, SOURCES, base / "data", base / "local", BuildOptions(progress=False))
    assert result.ok, result.failures
    return base, tree_digest(base / "local")


def test_local_workers_are_byte_identical_to_one_process(data_and_local):
    # Two worker processes decode the items and build the subsets' hub folders (one task per subset).
    base, local = data_and_local
    result = build(REGISTRY, SOURCES, base / "data", base / "two", BuildOptions(progress=False, num_proc=2))
    assert result.ok, result.failures
    assert tree_digest(base / "two") == local


def test_ray_engine_is_byte_identical_to_local(data_and_local):
    base, local = data_and_local
    try:
        options = BuildOptions(progress=False, engine="ray", num_proc=2)
        result = build(REGISTRY, SOURCES, base / "data", base / "ray", options)
        assert result.ok, result.failures
    finally:
        ray.shutdown()
    assert tree_digest(base / "ray") == local


def _dies_once(batch: list[int], marker: str) -> list[int]:
    """Work that kills its own worker process (as a lost node would) the first time it meets item 7."""
    if 7 in batch and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return [i * i for i in batch]


def test_a_task_lost_with_its_worker_is_retried_without_duplicating_rows(tmp_path):
    # Ray retries a task whose worker died (a system failure); the engine hands on each batch's result once, in
    # input order, so the rows are exactly those of a run without the failure.
    from functools import partial

    from medmat.engines import EngineOptions, map_ordered, map_tasks

    options = EngineOptions("ray", num_proc=2)
    batches = [[i, i + 1] for i in range(0, 20, 2)]
    try:
        rows = [r for result in map_ordered(partial(_dies_once, marker=str(tmp_path / "items")), iter(batches),
                                            options) for r in result]
        tasks = map_tasks(partial(_dies_once, marker=str(tmp_path / "tasks")), batches, options)
    finally:
        ray.shutdown()
    assert (tmp_path / "items").exists() and (tmp_path / "tasks").exists()  # each path really lost a worker
    assert rows == [i * i for i in range(20)]
    assert tasks == [[i * i for i in b] for b in batches]


def test_two_node_cluster_is_byte_identical_to_local(data_and_local, tmp_path):
    """A head and a worker node (separate raylets and ports) on 127.0.0.1; `medmat build --engine ray` joins them."""
    from ray.cluster_utils import Cluster

    base, local = data_and_local
    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        assert cluster.address.startswith("127.0.0.1:")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1])] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        nodes = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address='{cluster.address}', "
                                "log_to_driver=False); print(sorted(n['NodeManagerAddress'] for n in ray.nodes() "
                                "if n['Alive']))"], check=True, capture_output=True, text=True, env=env,
                               timeout=300).stdout
        assert nodes.strip().splitlines()[-1] == "['127.0.0.1', '127.0.0.1']"
        out = tmp_path / "cluster"
        run = subprocess.run([sys.executable, "-m", "medmat", "build", *SOURCES, "--data-dir", str(base / "data"),
                              "--out", str(out), "--engine", "ray", "--ray-address", cluster.address,
                              "--num-proc", "2"], capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
    finally:
        cluster.shutdown()
    assert tree_digest(out) == local


def test_object_storage_data_and_output(data_and_local, monkeypatch):
    """Data and output on an S3-compatible store (moto's server on 127.0.0.1), read and written by the build."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    base, local = data_and_local
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
            monkeypatch.setenv(key, value)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem(anon=False)
        fs.mkdir("medmat-test")
        fs.put(str(base / "data") + "/", "medmat-test/data/", recursive=True)
        result = build(REGISTRY, SOURCES, "s3://medmat-test/data", "s3://medmat-test/out", BuildOptions(progress=False))
        assert result.ok, result.failures
        fs.get("medmat-test/out/", str(base / "from-s3") + "/", recursive=True)
    finally:
        server.stop()
    assert tree_digest(base / "from-s3") == local


@pytest.mark.skipif(not os.environ.get("MEDMAT_FULL_SCALE_OUT"), reason="the full run takes minutes: set "
                    "MEDMAT_FULL_SCALE_OUT=1 (docs/scaling.md)")
def test_all_fakes_ray_engine_is_byte_identical_to_local(tmp_path):
    """Every source's fake archive, built into one hub by each engine: the same bytes."""
    from tests.fakes import FIXTURES

    sources = sorted(p.name for p in FIXTURES.iterdir() if (p / "fake.yaml").is_file())
    for source in sources:
        materialise(source, tmp_path / "data")
    local = build(REGISTRY, sources, tmp_path / "data", tmp_path / "local", BuildOptions(progress=False))
    try:
        on_ray = build(REGISTRY, sources, tmp_path / "data", tmp_path / "ray",
                       BuildOptions(progress=False, engine="ray", num_proc=2))
    finally:
        ray.shutdown()
    assert local.ok and on_ray.ok, (local.failures, on_ray.failures)
    assert len(local.reports) == len(sources)
    assert tree_digest(tmp_path / "ray") == tree_digest(tmp_path / "local")
