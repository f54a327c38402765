"""The Hub folder: Parquet shards per config, a README.md whose YAML declares every config, and the card."""

from __future__ import annotations

from pathlib import Path

from ..registry.loader import Registry
from .assemble import ConfigInfo, HubContents, build_hub_data
from .card import write_card


def build_hub(registry: Registry, out: Path, subset_ids: list[str], seed: int = 42, keep_pixels: bool = False,
              repo_id: str = "<org>/Med-MAT") -> HubContents:
    """Write OUT/hub/ from the sources already built under OUT/sources/.

    The new folder is written beside the old one (OUT/.hub-staging/hub, which sees OUT/sources through a link) and
    swapped in only when complete: an interrupted or failed run leaves the previous OUT/hub exactly as it was."""
    import os
    import shutil

    from ..prepare.atomic import swap_in

    out = Path(out)
    staging = out / ".hub-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        (staging / "sources").symlink_to(os.path.relpath(out / "sources", staging), target_is_directory=True)
        contents = build_hub_data(registry, staging, subset_ids, seed=seed, keep_pixels=keep_pixels)
        write_card(registry, contents, staging / "hub", repo_id=repo_id)
        swap_in(staging / "hub", out / "hub")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return contents


__all__ = ["ConfigInfo", "HubContents", "build_hub"]
