"""Benchmark the build against the least a validating builder must do and against `datasets`' own path.

    python bench/build_bench.py [--images 2000] [--size 512] [--runs 3] [--workdir /tmp/medmat-bench]

It writes a class-folder tree laid out like the CT kidney source (JPEG, as the real source; noise with structure
so that compression does real work), then times whole processes, each run paired (all commands once per round,
median over rounds, so machine noise hits every command alike), on one core:
  * raw limit: read each file, decode it once (Pillow) and SHA-256 the pixels: what any validating builder must do;
  * medmat source stage: `medmat build <source> --no-hub`;
  * imagefolder peer: `datasets.load_dataset("imagefolder", ...)`, image bytes embedded as `push_to_hub` does
    (`embed_table_storage`), then `to_parquet`;
  * medmat whole build: `medmat build <source>` (source stage + hub stage: subsets, QA, splits, card);
  * `medmat build --no-hub --num-proc 2` against one worker (needs two free cores);
  * peak RSS (GNU time) of the whole build at 1x and 10x the input (1x: 1,000 images, one full row group);
  * startup alone (the raw limit's imports; medmat on one image), to report the per-image ratios too.
Ratios are printed beside the figures; report those, never the absolute seconds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = "ct-kidney-normal-cyst-tumor-stone"
INNER = "CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone/CT-KIDNEY-DATASET-Normal-Cyst-Tumor-Stone"
LABELS = ("Cyst", "Normal", "Stone", "Tumor")
MEDMAT = [sys.executable, "-m", "medmat"]

RAW = textwrap.dedent("""
    import hashlib, sys
    from pathlib import Path
    import numpy as np
    from PIL import Image
    for path in sorted(Path(sys.argv[1]).rglob("*.jpg")):
        data = path.read_bytes()
        with Image.open(path) as im:
            pixels = np.asarray(im)
        hashlib.sha256(pixels.tobytes()).hexdigest()
""")

IMAGEFOLDER = textwrap.dedent("""
    import sys
    from datasets import load_dataset
    from datasets.table import embed_table_storage
    ds = load_dataset("imagefolder", data_dir=sys.argv[1], split="train", keep_in_memory=False)
    ds = ds.with_format("arrow").map(embed_table_storage, batched=True, batch_size=100)
    ds.with_format(None).to_parquet(sys.argv[2], batch_size=100)
""")


def make_tree(data: Path, count: int, size: int) -> Path:
    root = data / SOURCE / INNER
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    base = (np.sin(xx / 17.0) * np.cos(yy / 23.0) * 60 + 128).astype(np.int16)
    for i in range(count):
        label = LABELS[i % 4]
        arr = np.clip(base + rng.integers(-20, 20, (size, size)), 0, 255).astype(np.uint8)
        path = root / label / f"{label}- ({i}).jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path, quality=90)
    return root


def timed(cmd: list[str], cleanup: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one whole process, measured by GNU time."""
    if cleanup is not None:
        shutil.rmtree(cleanup, ignore_errors=True)
    result = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M", *cmd], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")
    line = [x for x in result.stderr.splitlines() if x.startswith("TIME ")][-1].split()
    return float(line[1]), float(line[2]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    # 1x is at least one full row group (100 MB of these JPEGs): below that, peak memory grows with the input
    # until the writer's one buffered row group is full, by design; past it, it must stay flat.
    parser.add_argument("--memory-images", type=int, default=1000, help="input of the 1x memory run (10x: ten times)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/medmat-bench"))
    args = parser.parse_args()

    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    images = make_tree(data, args.images, args.size)
    out = work / "out"
    commands = {
        "raw limit (read + decode once + SHA-256)": ([sys.executable, "-c", RAW, str(images)], None),
        "medmat source stage (--no-hub)": ([*MEDMAT, "build", SOURCE, "--data-dir", str(data), "--out", str(out),
                                            "--no-hub"], out),
        "imagefolder + embedded bytes + to_parquet": ([sys.executable, "-c", IMAGEFOLDER, str(images),
                                                       str(work / "peer.parquet")], None),
        "medmat whole build": ([*MEDMAT, "build", SOURCE, "--data-dir", str(data), "--out", str(out)], out),
        "medmat source stage, 2 workers": ([*MEDMAT, "build", SOURCE, "--data-dir", str(data), "--out", str(out),
                                            "--no-hub", "--num-proc", "2"], out),
        # fixed costs, to tell startup from per-image work: the raw limit's imports, medmat on one image
        "raw limit startup (imports only)": ([sys.executable, "-c", "import hashlib, numpy, PIL.Image"], None),
        "medmat source stage startup (1 image)": ([*MEDMAT, "build", SOURCE, "--data-dir", str(data), "--out",
                                                   str(out), "--no-hub", "--max-examples", "1"], out),
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, float] = {}
    timed(commands["raw limit (read + decode once + SHA-256)"][0])  # warm the page cache
    for _ in range(args.runs):
        for name, (cmd, cleanup) in commands.items():
            seconds, peak = timed(cmd, cleanup)
            times[name].append(seconds)
            peaks[name] = max(peaks.get(name, 0.0), peak)
    med = {name: statistics.median(v) for name, v in times.items()}
    print(f"{args.images} JPEG images of {args.size}x{args.size}, median of {args.runs} paired runs (whole processes)")
    for name, seconds in med.items():
        print(f"  {name:<44} {seconds:7.2f} s  {args.images / seconds:7.1f} img/s  peak {peaks[name]:7.1f} MiB")
    raw, peer = med["raw limit (read + decode once + SHA-256)"], med["imagefolder + embedded bytes + to_parquet"]
    print("ratios (lower is better unless said):")
    print(f"  source stage / raw limit          {med['medmat source stage (--no-hub)'] / raw:5.2f}  (target <= 1.3)")
    print(f"  whole build / imagefolder peer    {med['medmat whole build'] / peer:5.2f}  (target <= 1.5)")
    print(f"  1 worker / 2 workers (speed-up)   {med['medmat source stage (--no-hub)'] / med['medmat source stage, 2 workers']:5.2f}"
          "  (target >= 1.8, higher is better)")
    # Per image, startup left out on both sides: what the ratio tends to on a large source.
    raw_start, medmat_start = med["raw limit startup (imports only)"], med["medmat source stage startup (1 image)"]
    print(f"  per image, startup excluded       {(med['medmat source stage (--no-hub)'] - medmat_start) / (raw - raw_start):5.2f}"
          f"  (source stage vs raw limit; startup {medmat_start:.2f} s vs {raw_start:.2f} s)")
    two = med["medmat source stage, 2 workers"]
    print(f"  2-worker speed-up, startup excl.  {(med['medmat source stage (--no-hub)'] - medmat_start) / max(two - medmat_start, 1e-9):5.2f}")
    shutil.rmtree(work, ignore_errors=True)

    small, big = work / "mem-1x", work / "mem-10x"
    make_tree(small / "data", args.memory_images, args.size)
    make_tree(big / "data", args.memory_images * 10, args.size)
    _, one = timed([*MEDMAT, "build", SOURCE, "--data-dir", str(small / "data"), "--out", str(small / "out")])
    _, ten = timed([*MEDMAT, "build", SOURCE, "--data-dir", str(big / "data"), "--out", str(big / "out")])
    print(f"peak RSS of the whole build: {args.memory_images} images {one:.1f} MiB, {args.memory_images * 10} images "
          f"{ten:.1f} MiB (ratio {ten / one:.2f}, target: flat)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
