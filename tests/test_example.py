"""The newcomer's first command: the example builds end to end and loads back."""

from __future__ import annotations

from datasets import load_dataset
from typer.testing import CliRunner

from medmat.cli import app
from medmat.example_data import EXAMPLE_SOURCES


def test_example_end_to_end(tmp_path):
    result = CliRunner().invoke(app, ["example", "--out", str(tmp_path / "ex")])
    assert result.exit_code == 0, result.output
    assert "Answer with the option's letter" in result.output
    hub = tmp_path / "ex" / "hub"
    for source_id in EXAMPLE_SOURCES:
        assert f"source-{source_id}" in (hub / "README.md").read_text()
    liver = load_dataset(str(hub), "subset-46")
    row = liver["train"][0] if "train" in liver else liver["test"][0]
    assert row["volume"] is not None and row["depth"] == 5 and row["boxes"]  # a real 3D series with its mask
    assert (hub / "assets" / "mat-coverage.png").is_file()
    assert (hub / "assets" / "montage-subset-18.png").is_file()
