"""Figures for the dataset card: the MAT coverage grid and a montage of sample images per subset.

matplotlib (about 1.4 s to import) loads only when a figure is drawn: `montage_sources`, which `medmat publish`
uses, needs PIL alone."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..shards import open_streaming
from ..registry.loader import Registry

# Fixed metadata so the same inputs give the same PNG bytes.
_PNG_METADATA = {"Software": None}
SOURCES_KEY = "medmat:sources"  # PNG text chunk of a montage: the source ids whose pixels it shows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on build machines
    import matplotlib.pyplot as plt

    return plt


def montage_sources(path: Path) -> list[str]:
    """The source ids whose pixels a montage shows (its PNG text chunk); [] for any other image."""
    with Image.open(path) as image:
        text = getattr(image, "text", {}) or {}
    return [s for s in text.get(SOURCES_KEY, "").split(",") if s]


def coverage_figure(registry: Registry, built: dict[str, int], path: Path) -> Path:
    """Modality x area grid; each cell lists its subsets' task elements, dark when built (with sample counts)."""
    modalities = [m.key for m in registry.vocabulary.modalities]
    areas = [a.key for a in registry.vocabulary.areas]
    grid = np.zeros((len(modalities), len(areas)))
    text: dict[tuple[int, int], list[str]] = {}
    for sub in registry.subsets.values():
        i, j = modalities.index(sub.modality), areas.index(sub.area)
        element = registry.vocabulary.task(sub.task).element
        grid[i, j] = max(grid[i, j], 2 if sub.id in built else 1)
        text.setdefault((i, j), []).append(f"{sub.id} {element[:4]}" + (f" ({built[sub.id]})" if sub.id in built
                                                                      else ""))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.1 * len(areas) + 2, 0.9 * len(modalities) + 2), dpi=100)
    ax.imshow(grid, cmap="Blues", vmin=0, vmax=2.6, aspect="auto")
    for (i, j), lines in text.items():
        ax.text(j, i, "\n".join(lines), ha="center", va="center", fontsize=5.5,
                color="white" if grid[i, j] == 2 else "black")
    ax.set_xticks(range(len(areas)), areas, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(modalities)), modalities, fontsize=8)
    ax.set_title("MAT coverage: subsets by modality and area (dark: built here, with sample count)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata=_PNG_METADATA)
    plt.close(fig)
    return path


def montage(files: list[Path], path: Path, title: str, count: int = 8, tile: int = 128, scan: int = 4000) -> Path | None:
    """Up to `count` images (with pixels) of the given shards, one per answer first, with their answers."""
    by_answer: dict[str, dict] = {}
    extra: list[dict] = []
    seen = 0
    for file in files:
        for batch in open_streaming(file).iter_batches(batch_size=64, columns=["image", "answer", "source_id"]):
            for row in batch.to_pylist():
                seen += 1
                if not (row["image"] and row["image"]["bytes"]):
                    continue
                if row["answer"] not in by_answer and len(by_answer) < count:
                    by_answer[row["answer"]] = row
                elif len(extra) < count:
                    extra.append(row)
            if len(by_answer) >= count or seen >= scan:
                break
        if len(by_answer) >= count or seen >= scan:
            break
    samples = (list(by_answer.values()) + extra)[:count]
    if not samples:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(samples), figsize=(1.6 * len(samples), 2.0), dpi=100, squeeze=False)
    for ax, row in zip(axes[0], samples):
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        image.thumbnail((tile, tile))
        ax.imshow(np.asarray(image.convert("RGB")))
        ax.set_title((row["answer"] or "")[:18], fontsize=6)
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = sorted({row["source_id"] for row in samples})
    fig.savefig(path, format="png", metadata=_PNG_METADATA | {SOURCES_KEY: ",".join(shown)})
    plt.close(fig)
    return path
