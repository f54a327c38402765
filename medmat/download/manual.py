"""Numbered steps for sources a person must fetch by hand (registration, credentialed, on request).

The steps come from the manifest's `access.instructions` (with DIR replaced by the real data folder), framed by
where to go first and how to check the result, so the user ends with the same verification as a download.
"""

from __future__ import annotations

from pathlib import Path

from ..registry.models import AccessKind, Source
from .layout import check_expected, source_dir, substitute_dir

KIND_NOTE = {
    AccessKind.registration: "needs an account on the provider's site",
    AccessKind.credentialed: "needs a credentialed account and a signed data-use agreement",
    AccessKind.request: "is given out on request by its owners",
    AccessKind.open: "is open, but its files could not all be fetched automatically",
    AccessKind.kaggle_dataset: "is a Kaggle dataset",
    AccessKind.kaggle_competition: "is a Kaggle competition",
}


def steps(source: Source, data_dir: Path) -> list[str]:
    """The numbered steps, DIR replaced by `data_dir`; the last ones say what must be there and how to check."""
    out: list[str] = []
    page = str(source.access.page) if source.access.page is not None else None
    if page and not any(page.rstrip("/") in text for text in source.access.instructions[:1]):
        out.append(f"Open {page} ({source.access.kind.value} access).")
    out += [substitute_dir(text, data_dir) for text in source.access.instructions]
    root = source_dir(data_dir, source.id)
    wanted = ", ".join(e.path for e in source.expected_files)
    out.append(f"Check that {root}/ now holds: {wanted}.")
    out.append(f"Run `medmat download {source.id} --data-dir {data_dir}` (or `medmat doctor {source.id} "
               f"--data-dir {data_dir}`) to verify the layout before building.")
    return out


def render(source: Source, data_dir: Path) -> str:
    missing = [c for c in check_expected(source, data_dir) if not c.ok]
    head = (f"{source.id} {KIND_NOTE[source.access.kind]}; {len(missing)} of {len(source.expected_files)} expected "
            f"item(s) are not under {source_dir(data_dir, source.id)}/ yet. Steps:")
    return "\n".join([head] + [f"  {i}. {text}" for i, text in enumerate(steps(source, data_dir), 1)])
