"""Benchmark the source build: throughput against raw decode + encode, and peak memory at 1x and 10x input.

    python bench/build_bench.py [--images 2000] [--size 512] [--workdir /tmp/medmat-bench]

It writes a class-folder tree laid out like the CT kidney source (JPEG, as the real source; noise with structure
so that compression does real work), then measures in the same run:
  * raw: for every file, Pillow decode + encode to PNG in memory (what any converter must at least do);
  * pipeline: `build_source` with one worker (adapter, decode, hashes, Parquet writing);
  * peak RSS of a build of N and of 10 N images, each in a fresh process.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = "ct-kidney-normal-cyst-tumor-stone"
INNER = "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone"
LABELS = ("Cyst", "Normal", "Stone", "Tumor")


def make_tree(data: Path, count: int, size: int) -> list[Path]:
    root = data / SOURCE / INNER
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    base = (np.sin(xx / 17.0) * np.cos(yy / 23.0) * 60 + 128).astype(np.int16)
    paths = []
    for i in range(count):
        label = LABELS[i % 4]
        arr = np.clip(base + rng.integers(-20, 20, (size, size)), 0, 255).astype(np.uint8)
        path = root / label / f"{label}- ({i}).jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path, quality=90)
        paths.append(path)
    return paths


def raw_decode_encode(paths: list[Path], fmt: str) -> float:
    """Seconds to decode every file and encode it again (PNG: lossless; JPEG: the files' own format)."""
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as im:
            im.load()
            buf = io.BytesIO()
            im.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return time.perf_counter() - start


def run_build(data: Path, out: Path, num_proc: int = 1) -> tuple[float, dict]:
    """Seconds for the build itself (the registry is loaded before the clock starts)."""
    from medmat.prepare.source import BuildOptions, build_source
    from medmat.registry.loader import load_registry

    registry, _ = load_registry()
    start = time.perf_counter()
    report = build_source(registry, SOURCE, data, out, BuildOptions(num_proc=num_proc, progress=False))
    return time.perf_counter() - start, report


def child(data: str, out: str) -> None:
    """Build in this (fresh) process and print its peak RSS in MiB."""
    _, report = run_build(Path(data), Path(out))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"written": report["written"], "peak_mib": peak_kib / 1024}))


def peak_memory(workdir: Path, count: int, size: int) -> dict:
    data, out = workdir / f"data-{count}", workdir / f"out-{count}"
    make_tree(data, count, size)
    result = subprocess.run([sys.executable, __file__, "--child", str(data), str(out)], check=True,
                            capture_output=True, text=True)
    shutil.rmtree(data)
    shutil.rmtree(out)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medmat-bench"))
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    shutil.rmtree(args.workdir, ignore_errors=True)
    data = args.workdir / "data"
    paths = make_tree(data, args.images, args.size)
    raw_decode_encode(paths[:50], "PNG")  # warm the page cache and Pillow
    raw_png = raw_decode_encode(paths, "PNG")
    raw_jpeg = raw_decode_encode(paths, "JPEG")
    pipeline, report = run_build(data, args.workdir / "out")
    assert report["written"] == args.images, {k: report[k] for k in ("written", "quarantined", "excluded")}
    print(f"images: {args.images} of {args.size}x{args.size} JPEG, one core")
    print(f"raw decode + PNG encode : {args.images / raw_png:8.1f} images/s ({raw_png:.2f} s)")
    print(f"raw decode + JPEG encode: {args.images / raw_jpeg:8.1f} images/s ({raw_jpeg:.2f} s)")
    print(f"medmat build, 1 worker  : {args.images / pipeline:8.1f} images/s ({pipeline:.2f} s)")
    print(f"overhead vs PNG baseline : {100 * (pipeline / raw_png - 1):+7.1f} %")
    print(f"overhead vs JPEG baseline: {100 * (pipeline / raw_jpeg - 1):+7.1f} %"
          "  (medmat keeps unchanged JPEG/PNG bytes as they are, so it never re-encodes these files)")
    shutil.rmtree(args.workdir)

    small = max(args.images // 4, 100)
    one = peak_memory(args.workdir, small, args.size)
    ten = peak_memory(args.workdir, small * 10, args.size)
    print(f"peak RSS, {small:>6} images : {one['peak_mib']:8.1f} MiB")
    print(f"peak RSS, {small * 10:>6} images : {ten['peak_mib']:8.1f} MiB (ratio {ten['peak_mib'] / one['peak_mib']:.2f})")
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
