"""The hub's split stage (link -> sides -> paper selection -> statistics) on synthetic key sets, on one core.

    PYTHONPATH=. python bench/split_bench.py [--sizes 10000 100000 500000 1000000] [--peer-max 100000] [--json OUT]

Key sets imitate what real subsets hold (medmat.mat.splits.KEY_SCHEMA): 5 sources (official train/test,
train/validation only, no split), patient groups, 2 % exact copies, and realistic pHash clusters:
  * most images unique (random 64-bit hashes);
  * near-duplicate families of 2-8 copies within 0-3 bits (re-saved, re-scaled copies across sources);
  * CT/MR-like slice series of 20-300 slices, each slice 1 bit from the previous (chains; half without a patient id);
  * a blank-image cluster of identical hashes, 0.5 % of the samples (one band bucket of that size and more).
Each size runs in a fresh process pinned to one CPU, with BLAS/Arrow threads at 1, --repeat times (the fastest run
is reported, since the machine may be shared; all runs are in the JSON); peak memory is that process's
peak resident set size during the stage (VmHWM, reset just before it), shown with the resident size once the
keys are read from Parquet.

Floor, measured in the same process: numpy's argsort and gather of as many random 64-bit values, to show how this
machine's memory hierarchy alone scales between sizes.

Peer, measured in the same run: the linking of medmat before issue 11 (every pair of a band bucket compared in
Python, buckets over 5,000 skipped), run on the same keys up to --peer-max samples.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["Normal", "Cyst", "Tumor", "Stone", "Abscess"]
SOURCES = [("src-official", ["train", "test"]), ("src-trainval", ["train", "val"]), ("src-nosplit", [None]),
           ("src-official2", ["Training", "Testing"]), ("src-nosplit2", [None])]


def synthetic_keys(n: int, seed: int = 0):
    """A pyarrow table of n keys with the clusters described above."""
    import numpy as np
    import pyarrow as pa

    from medmat.mat.splits import KEY_SCHEMA

    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + \
        rng.integers(0, 2, n, dtype=np.int64).astype(np.uint64)
    group = np.full(n, -1, np.int64)
    flips = np.uint64(1) << rng.integers(0, 64, (n, 3)).astype(np.uint64)
    i = 0
    next_group = 0
    while i < n:
        r = rng.random()
        if r < 0.08:  # a near-duplicate family
            size = int(rng.integers(2, 9))
            base = hashes[i]
            for k in range(1, min(size, n - i)):
                bits = int(rng.integers(0, 4))
                h = base
                for b in range(bits):
                    h ^= flips[i + k, b]
                hashes[i + k] = h
            i += size
        elif r < 0.085:  # a slice series: each slice 1 bit from the previous
            size = int(rng.integers(20, 301))
            for k in range(1, min(size, n - i)):
                hashes[i + k] = hashes[i + k - 1] ^ flips[i + k, 0]
            if rng.random() < 0.5:
                group[i:i + size] = next_group
                next_group += 1
            i += size
        else:
            if rng.random() < 0.3:  # a patient with 1-4 images
                size = int(rng.integers(1, 5))
                group[i:i + size] = next_group
                next_group += 1
                i += size
            else:
                i += 1
    blank = rng.choice(n, max(2, n // 200), replace=False)
    hashes[blank] = np.uint64(0x8000000000000000)
    sha = np.arange(n)
    copies = rng.choice(np.arange(1, n), n // 50, replace=False)  # 2 % exact copies of a nearby image
    sha[copies] = sha[np.maximum(copies - rng.integers(1, 4, copies.size), 0)]
    # A patient's or a series' images come from one source and one official split; copies (families) may not.
    unit = np.where(group >= 0, group + n, np.arange(n))
    source_of = _per_unit(rng.integers(0, len(SOURCES), 2 * n), unit)
    split_pick = _per_unit(rng.random(2 * n), unit)
    labels = _per_unit(rng.choice(len(LABELS), 2 * n, p=[0.4, 0.25, 0.2, 0.1, 0.05]), unit)
    source_names, originals = [], []
    for s, u in zip(source_of.tolist(), split_pick.tolist()):
        name, splits = SOURCES[s]
        source_names.append(name)
        originals.append(splits[0] if len(splits) == 1 or u < 0.85 else splits[1])
    ids = [f"{source_names[k]}/{k:08d}" for k in range(n)]
    return pa.Table.from_pydict({
        "id": ids, "source": source_names,
        "group_id": [f"p{g}" if g >= 0 else None for g in group.tolist()],
        "original_split": originals,
        "pixel_sha256": [f"{v:064x}" for v in sha.tolist()],
        "phash": [f"{v:016x}" for v in hashes.tolist()],
        "labels": [[LABELS[v]] for v in labels.tolist()],
    }, schema=KEY_SCHEMA)


def near_identical_keys(n: int, seed: int = 0):
    """The issue's worst case: n images of one scene, each within 0-3 bits of one hash (CT slices, chest X-rays)."""
    import numpy as np
    import pyarrow as pa

    from medmat.mat.splits import KEY_SCHEMA

    rng = np.random.default_rng(seed)
    centre = int(rng.integers(0, 2**63))
    hashes = []
    for _ in range(n):
        h = centre
        for bit in rng.choice(64, int(rng.integers(0, 4)), replace=False).tolist():
            h ^= 1 << bit
        hashes.append(h)
    return pa.Table.from_pydict({
        "id": [f"ct/{k:06d}" for k in range(n)], "source": ["ct"] * n, "group_id": [None] * n,
        "original_split": [None] * n, "pixel_sha256": [f"{k:064x}" for k in range(n)],
        "phash": [f"{h:016x}" for h in hashes], "labels": [["Normal"]] * n}, schema=KEY_SCHEMA)


def near_identical(sizes: list[int]) -> None:
    """Our linking vs the peer's on one cluster of near-identical images (in this process, one core)."""
    from medmat.mat.linking import link

    for n in sizes:
        keys = near_identical_keys(n)
        t0 = time.perf_counter()
        stats = link(keys).stats
        ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        peer_link(keys)
        peer = time.perf_counter() - t0
        print(f"near-identical cluster of {n:>6,}: ours {ours:.3f} s (largest component {stats['largest_component']},"
              f" pairs compared {stats['near_duplicates']['pairs_compared']:,}), peer {peer:.2f} s", flush=True)


def _per_unit(values, unit):
    """values[unit]: one draw per patient/series (units >= n) or per image."""
    return values[unit]


def peer_link(table) -> int:
    """medmat's linking before issue 11 (commit 6d614b1, medmat/mat/splits.py `components`), for comparison."""
    groups, shas, phashes = (table[c].to_pylist() for c in ("group_id", "pixel_sha256", "phash"))
    parent = list(range(len(groups)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_group, by_hash = defaultdict(list), defaultdict(list)
    bands = [defaultdict(list) for _ in range(4)]
    for i, (g, s, p) in enumerate(zip(groups, shas, phashes)):
        if g:
            by_group[g].append(i)
        by_hash[s].append(i)
        if p:
            for b in range(4):
                bands[b][p[4 * b: 4 * b + 4]].append(i)
    for tab in (by_group, by_hash):
        for idx in tab.values():
            for other in idx[1:]:
                union(idx[0], other)
    for band in bands:
        for idx in band.values():
            if len(idx) < 2 or len(idx) > 5000:
                continue
            values = [int(phashes[i], 16) for i in idx]
            for x in range(len(idx)):
                for y in range(x + 1, len(idx)):
                    if bin(values[x] ^ values[y]).count("1") <= 3:
                        union(idx[x], idx[y])
    return len({find(i) for i in range(len(groups))})


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss() -> int:
    """Reset the kernel's peak-RSS mark (Linux: /proc/self/clear_refs 5) and return the current RSS in KiB."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    return _status_kib("VmRSS")


def run_one(path: Path, peer: bool, repeat: int = 3) -> dict:
    """In this process: read the keys (as the hub reads them), then time the split stage (and the peer's linking)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medmat.mat.splits import paper_plan, plan_splits, split_statistics

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    keys = pq.read_table(path)
    n = keys.num_rows
    rss_before = _reset_peak_rss()
    times, link_times = [], []
    for _ in range(repeat):  # the machine is shared: the fastest of a few runs is the stage's own time
        t0 = time.perf_counter()
        plan = plan_splits(keys, seed=42)
        link_times.append(time.perf_counter() - t0)
        full = plan.as_dict()  # what the hub writer looks sides up in
        paper = paper_plan(keys, plan.is_test, seed=42)
        paper.as_dict(plan.ids)
        stats = split_statistics(plan, keys, paper)
        times.append(time.perf_counter() - t0)
        del full
    elapsed, t_link = min(times), min(link_times)
    import numpy as np

    floor = []  # the machine's own scaling at this size: one argsort and one gather of n random 64-bit values
    values = np.random.default_rng(0).integers(0, 2**63, n)
    for _ in range(repeat):
        t0 = time.perf_counter()
        values[np.argsort(values)]
        floor.append(time.perf_counter() - t0)
    result = {"samples": n, "seconds": round(elapsed, 3), "seconds_all_runs": [round(t, 3) for t in times],
              "numpy_argsort_gather_seconds": round(min(floor), 4), "seconds_link_and_sides": round(t_link, 3),
              "peak_rss_mib": round(_status_kib("VmHWM") / 1024, 1),
              "rss_before_stage_mib": round(rss_before / 1024, 1),
              "components": stats["components"], "largest_component_share": stats["largest_component_share"],
              "test_share": stats["test_share"], "links": stats["links"],
              "near_duplicates": stats["near_duplicates"]}
    if peer:
        t0 = time.perf_counter()
        result["peer_components"] = peer_link(keys)
        result["peer_seconds_link"] = round(time.perf_counter() - t0, 3)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000, 1_000_000])
    ap.add_argument("--peer-max", type=int, default=100_000, help="largest size the peer runs on")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--repeat", type=int, default=3, help="runs per size; the fastest is reported")
    ap.add_argument("--cluster", type=int, nargs="*", default=[2000, 4000, 8000],
                    help="sizes of the near-identical-cluster comparison with the peer (none: skip it)")
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.peer, args.repeat)))
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pin = ["taskset", "-c", str(min(os.sched_getaffinity(0)))] if os.path.exists("/usr/bin/taskset") else []
    import tempfile

    import pyarrow.parquet as pq

    results = []
    tmp = Path(tempfile.mkdtemp(prefix="split-bench-"))
    for n in args.sizes:
        path = tmp / f"keys-{n}.parquet"
        pq.write_table(synthetic_keys(n), path)
        cmd = pin + [sys.executable, __file__, "--one", str(path), "--repeat", str(args.repeat)] + \
            (["--peer"] if n <= args.peer_max else [])
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        path.unlink()
        results.append(json.loads(out.strip().splitlines()[-1]))
        r = results[-1]
        peer = (f"; peer's linking alone {r['peer_seconds_link']:.2f} s = {r['peer_seconds_link'] / r['seconds']:.1f}x "
                f"our whole stage" if "peer_seconds_link" in r else "")
        print(f"{n:>9,} samples: {r['seconds']:7.2f} s, peak RSS {r['peak_rss_mib']:7.1f} MiB "
              f"(keys read: {r['rss_before_stage_mib']:.1f}), "
              f"largest component {r['largest_component_share']:.2%}, test {r['test_share']:.1%}{peer}", flush=True)
    for a, b in zip(results, results[1:]):
        doublings = math.log2(b["samples"] / a["samples"])
        growth = b["seconds"] / a["seconds"]
        floor = b["numpy_argsort_gather_seconds"] / a["numpy_argsort_gather_seconds"]
        print(f"{a['samples']:,} -> {b['samples']:,}: time x{growth:.2f} for samples x{b['samples'] / a['samples']:.0f}"
              f", i.e. x{growth ** (1 / doublings):.2f} per doubling (numpy argsort + gather of as many values, same "
              f"process: x{floor ** (1 / doublings):.2f} per doubling)")
    if args.cluster:
        near_identical(args.cluster)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
