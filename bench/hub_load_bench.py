"""Benchmark how fast a Hub user's `load_dataset` starts on a full hub folder, against the same folder with the
card the previous medmat wrote (every `dataset_info` entry repeating the features), served the same way.

    python bench/hub_load_bench.py [--hub OUT/hub] [--config subset-02] [--runs 3] [--workdir /tmp/medmat-hub-bench]

Without --hub it builds every fake archive of tests/fixtures (`medmat build all`, a few minutes). Both variants are
committed to git repos served by olah (a real Hub-protocol server, offline) on 127.0.0.1, and each run is a fresh
client process with an empty cache: `get_dataset_config_names(repo)` and `load_dataset(repo, config)` wall times
(imports excluded). Reports the median of each and the ratio peer/ours.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLIENT = r'''
import json, sys, time
from datasets import get_dataset_config_names, load_dataset
repo, config = sys.argv[1:3]
t = time.perf_counter(); names = get_dataset_config_names(repo); a = time.perf_counter() - t
t = time.perf_counter(); ds = load_dataset(repo, config); b = time.perf_counter() - t
print(json.dumps({"configs": len(names), "names_s": a, "load_s": b, "rows": sum(len(v) for v in ds.values())}))
'''


def with_repeated_features(hub: Path, dest: Path) -> Path:
    """A copy of the hub whose card repeats the features in every dataset_info entry (the previous form)."""
    import yaml
    from datasets.info import DatasetInfo

    from medmat.mat.schema import MAT_FEATURES

    shutil.copytree(hub, dest)
    _, header, body = (dest / "README.md").read_text(encoding="utf-8").split("---\n", 2)
    meta = yaml.safe_load(header)
    features = DatasetInfo(features=MAT_FEATURES)._to_yaml_dict()["features"]
    for info in meta["dataset_info"] if isinstance(meta["dataset_info"], list) else [meta["dataset_info"]]:
        info["features"] = copy.deepcopy(features)  # a copy each, or PyYAML would write one anchor and aliases
    (dest / "README.md").write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n" + body,
                                    encoding="utf-8")
    return dest


def main() -> None:
    from tests.hf_mirror import HubMirror

    ap = argparse.ArgumentParser()
    ap.add_argument("--hub", type=Path)
    ap.add_argument("--config", default="subset-02")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medmat-hub-bench"))
    args = ap.parse_args()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    hub = args.hub
    if hub is None:
        from tests.fakes import fixture_ids, materialise

        for source_id in fixture_ids():
            materialise(source_id, work / "data")
        subprocess.run([sys.executable, "-m", "medmat.cli", "build", "all", "--data-dir", str(work / "data"),
                        "--out", str(work / "out"), "--repo", "bench/Med-MAT"], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        hub = work / "out" / "hub"
    peer = with_repeated_features(hub, work / "peer-hub")
    mirror = HubMirror(work / "mirror")
    mirror.add(hub, "bench/ours")
    mirror.add(peer, "bench/peer")
    results = {}
    with mirror:
        for name in ("ours", "peer"):
            runs = []
            for i in range(args.runs):
                done = subprocess.run([sys.executable, "-c", CLIENT, f"bench/{name}", args.config],
                                      env=mirror.env(work / f"home-{name}-{i}") | {"PYTHONPATH": str(ROOT)},
                                      capture_output=True, text=True, check=True)
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            results[name] = {k: statistics.median(r[k] for r in runs) for k in ("names_s", "load_s")} | {
                "configs": runs[0]["configs"], "rows": runs[0]["rows"],
                "readme_bytes": ((hub if name == "ours" else peer) / "README.md").stat().st_size}
    for name, r in results.items():
        print(f"{name}: README {r['readme_bytes']:,} B, {r['configs']} configs; get_dataset_config_names "
              f"{r['names_s']:.2f} s, load_dataset({args.config!r}) {r['load_s']:.2f} s ({r['rows']} rows)")
    print(f"ratio peer/ours: config names x{results['peer']['names_s'] / results['ours']['names_s']:.1f}, "
          f"load_dataset x{results['peer']['load_s'] / results['ours']['load_s']:.1f}")


if __name__ == "__main__":
    main()
