"""The Hub folder: Parquet shards per config, a README.md whose YAML declares every config, the card, the
per-source LICENSES.md and the Croissant metadata (croissant.json)."""

from __future__ import annotations

from pathlib import Path

from ..registry.loader import Registry
from .assemble import ConfigInfo, HubContents, build_hub_data
from .card import write_card
from .croissant import write_croissant


def build_hub(registry: Registry, out: Path, subset_ids: list[str], seed: int = 42, publishable: bool = False,
              repo_id: str | None = None) -> HubContents:
    """Write OUT/hub/ from the sources already built under OUT/sources/.

    A local build (the default) keeps every pixel; `publishable` leaves out the pixels (and montage images) of
    sources whose licenses forbid republishing them, which is what `medmat publish` requires."""
    contents = build_hub_data(registry, Path(out), subset_ids, seed=seed, publishable=publishable)
    write_card(registry, contents, Path(out) / "hub", repo_id=repo_id)
    write_croissant(registry, contents, Path(out) / "hub", repo_id=repo_id)
    return contents


__all__ = ["ConfigInfo", "HubContents", "build_hub"]
