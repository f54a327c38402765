"""docs/quickstart.ipynb runs: its code cells, in order, against the packaged example built in a fresh folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_quickstart_notebook_runs(tmp_path, monkeypatch, capsys):
    matplotlib.use("Agg")
    notebook = json.loads((DOCS / "quickstart.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(DOCS.parent), os.environ.get("PYTHONPATH", "")]))
    namespace: dict = {}
    for cell in cells:
        exec(compile(cell, "quickstart.ipynb", "exec"), namespace)  # noqa: S102 - our own notebook
    out = capsys.readouterr().out
    assert (tmp_path / "medmat-example" / "hub" / "README.md").is_file()
    assert "configs:" in out and "Answer with the option's letter" in out
    assert "shape" in out and "voxel size (mm)" in out  # the 3D volume cell found and decoded a volume
    assert namespace["row"]["image"] is not None and namespace["volume"] is not None
