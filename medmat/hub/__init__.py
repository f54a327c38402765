"""The Hub folder: Parquet shards per config, a README.md whose YAML declares every config, the card, the
per-source LICENSES.md and the Croissant metadata (croissant.json)."""

from __future__ import annotations

from pathlib import Path

from ..registry.loader import Registry
from .assemble import ConfigInfo, HubContents, build_hub_data
from .card import write_card
from .croissant import write_croissant


def build_hub(registry: Registry, out: Path, subset_ids: list[str], seed: int = 42, publishable: bool = False,
              repo_id: str | None = None, figures: bool = False, engine=None) -> HubContents:
    """Write OUT/hub/ from the sources already built under OUT/sources/.

    A local build (the default) keeps every pixel; `publishable` leaves out the pixels (and montage images) of
    sources whose licenses forbid republishing them, which is what `medmat publish` requires.
    `figures` draws the card's MAT coverage grid and sample montages (assets/*.png; matplotlib, about half the
    time of this stage); `medmat build` asks for them with --publishable or --figures.
    The new folder is written beside the old one (OUT/.hub-staging/hub, which sees OUT/sources through a link) and
    swapped in only when complete: an interrupted or failed run leaves the previous OUT/hub exactly as it was, and
    nothing of it (an earlier build's figures included) survives into the new one.
    `engine` (medmat.engines.EngineOptions) runs each subset as one task; default: one after another, here."""
    import os
    import shutil

    from ..prepare.atomic import swap_in

    out = Path(out)
    staging = out / ".hub-staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        (staging / "sources").symlink_to(os.path.relpath(out / "sources", staging), target_is_directory=True)
        contents = build_hub_data(registry, staging, subset_ids, seed=seed, publishable=publishable,
                                  engine=engine)
        write_card(registry, contents, staging / "hub", repo_id=repo_id, figures=figures)
        write_croissant(registry, contents, staging / "hub", repo_id=repo_id)
        swap_in(staging / "hub", out / "hub")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return contents


__all__ = ["ConfigInfo", "HubContents", "build_hub"]
