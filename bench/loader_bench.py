"""Benchmark training-loader throughput from the built Hub Parquet vs the upstream layout, and build memory.

    python bench/loader_bench.py [--images 2000] [--size 512] [--workdir /tmp/medmat-loader-bench]

Same images both ways (a CT-kidney-shaped source of JPEGs, built by medmat, then exported to the upstream layout of
a JSON list plus the loose image files). Each loader decodes to RGB and yields uint8 tensors of 224x224 through a
torch DataLoader (batch 32) with 0 and 2 workers; the figure is images/s after one warm-up epoch. Then the peak RSS
of a full `medmat build` (source + Hub folder) of N and 10 N images, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from build_bench import SOURCE, make_tree  # noqa: E402  (the same synthetic source as the build benchmark)


def _to_tensor(image: Image.Image):
    import torch

    return torch.from_numpy(np.array(image.convert("RGB").resize((224, 224)), dtype=np.uint8))


def parquet_dataset(hub: Path):
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(hub / "data" / "subset-02" / "*" / "*.parquet"), split="train")
    ds = ds.select_columns(["image", "answer_choice"])

    class Wrapped:
        def __len__(self):
            return len(ds)

        def __getitem__(self, i):
            row = ds[i]
            return _to_tensor(row["image"]), row["answer_choice"]

    return Wrapped()


def upstream_dataset(folder: Path):
    records = json.loads((folder / "Subset--02-train.json").read_text())

    class Upstream:
        def __len__(self):
            return len(records)

        def __getitem__(self, i):
            record = records[i]
            with Image.open(folder / record["image"]) as image:
                return _to_tensor(image), record["Answer-choice"]

    return Upstream()


def export_upstream(data: Path, hub: Path, folder: Path) -> None:
    """The upstream layout: one JSON list of records pointing at the loose original files."""
    import pyarrow.parquet as pq

    records = []
    for path in sorted((hub / "data" / "subset-02").glob("*/*.parquet")):
        for row in pq.read_table(path, columns=["original_path", "question_choice", "answer_choice"]).to_pylist():
            records.append({"id": len(records), "image": f"images/{row['original_path']}",
                            "Question-choice": row["question_choice"], "Answer-choice": row["answer_choice"]})
    shutil.copytree(data / SOURCE, folder / "images")
    (folder / "Subset--02-train.json").write_text(json.dumps(records))


def throughput(dataset, workers: int) -> float:
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=32, num_workers=workers, shuffle=False)
    for _ in loader:  # warm-up: page cache, worker start
        pass
    start = time.perf_counter()
    count = sum(len(batch[1]) for batch in loader)
    return count / (time.perf_counter() - start)


def child(data: str, out: str) -> None:
    from medmat.prepare.source import BuildOptions, build_source
    from medmat.hub import build_hub
    from medmat.registry.loader import load_registry

    registry, _ = load_registry()
    build_source(registry, SOURCE, Path(data), Path(out), BuildOptions(progress=False))
    build_hub(registry, Path(out), ["02"])
    print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def build(data: Path, out: Path) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", str(data), str(out)], check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medmat-loader-bench"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    shutil.rmtree(args.workdir, ignore_errors=True)
    data, out = args.workdir / "data", args.workdir / "out"
    make_tree(data, args.images, args.size)
    small = build(data, out)
    export_upstream(data, out / "hub", args.workdir / "upstream")
    print(f"images: {args.images} JPEG {args.size}x{args.size}; loader -> 224x224 uint8 tensors, batch 32")
    for workers in (0, 2):
        hub_rate = throughput(parquet_dataset(out / "hub"), workers)
        up_rate = throughput(upstream_dataset(args.workdir / "upstream"), workers)
        print(f"workers={workers}: Hub Parquet {hub_rate:7.1f} images/s | upstream JSON + files {up_rate:7.1f} "
              f"images/s | ratio {hub_rate / up_rate:.2f}")

    big_data, big_out = args.workdir / "data10", args.workdir / "out10"
    make_tree(big_data, 10 * args.images, args.size)
    big = build(big_data, big_out)
    print(f"peak RSS of `build` (source + hub), {args.images:>6} images: {small['peak_mib']:7.1f} MiB")
    print(f"peak RSS of `build` (source + hub), {10 * args.images:>6} images: {big['peak_mib']:7.1f} MiB "
          f"(ratio {big['peak_mib'] / small['peak_mib']:.2f})")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
