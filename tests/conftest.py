from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from medmat.registry import default_manifests_dir

from . import loopback

MANIFESTS = default_manifests_dir()
TEMPLATE_SOURCE = "ct-kidney-normal-cyst-tumor-stone"


class ManifestCopy:
    """A writable copy of a manifests folder, with helpers to break one file at a time."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, pattern: str) -> Path:
        matches = sorted(self.root.glob(pattern))
        assert len(matches) == 1, f"{pattern} matches {matches}"
        return matches[0]

    def load(self, pattern: str) -> dict:
        return yaml.safe_load(self.path(pattern).read_text())

    def save(self, pattern: str, data: dict) -> None:
        self.path(pattern).write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def edit(self, pattern: str, change) -> None:
        data = self.load(pattern)
        change(data)
        self.save(pattern, data)


@pytest.fixture
def full_copy(tmp_path) -> ManifestCopy:
    """Every shipped manifest, copied."""
    root = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, root)
    return ManifestCopy(root)


@pytest.fixture
def mini_copy(tmp_path) -> ManifestCopy:
    """The smallest valid registry: the vocabulary, the licenses, one source and its subset."""
    root = tmp_path / "manifests"
    (root / "sources").mkdir(parents=True)
    (root / "subsets").mkdir()
    for name in ("vocabulary.yaml", "licenses.yaml"):
        shutil.copy(MANIFESTS / name, root / name)
    shutil.copy(MANIFESTS / "sources" / f"{TEMPLATE_SOURCE}.yaml", root / "sources")
    for path in (MANIFESTS / "subsets").glob("02-*.yaml"):
        shutil.copy(path, root / "subsets")
    return ManifestCopy(root)


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 for download tests (tests/loopback.py), stopped after the test."""
    lb = loopback.start()
    yield lb
    lb.server.shutdown()
    lb.server.server_close()
