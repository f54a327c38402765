"""The Hub folder: Parquet shards per config, a README.md whose YAML declares every config, and the card."""

from __future__ import annotations

from pathlib import Path

from ..registry.loader import Registry
from .assemble import ConfigInfo, HubContents, build_hub_data
from .card import write_card


def build_hub(registry: Registry, out: Path, subset_ids: list[str], seed: int = 42, keep_pixels: bool = False,
              repo_id: str = "<org>/Med-MAT") -> HubContents:
    """Write OUT/hub/ from the sources already built under OUT/sources/."""
    contents = build_hub_data(registry, Path(out), subset_ids, seed=seed, keep_pixels=keep_pixels)
    write_card(registry, contents, Path(out) / "hub", repo_id=repo_id)
    return contents


__all__ = ["ConfigInfo", "HubContents", "build_hub"]
