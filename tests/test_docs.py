"""Generated docs stay true to the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medmat.validation import validate
from medmat.registry.errata import errata_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cli_reference_is_current(tmp_path):
    out = tmp_path / "cli.md"
    subprocess.run([sys.executable, "-m", "typer", "medmat.cli", "utils", "docs", "--name", "medmat",
                    "--title", "CLI reference", "--output", str(out)], check=True, capture_output=True)
    assert (DOCS / "cli.md").read_text() == out.read_text(), (
        "docs/cli.md is stale: run `python -m typer medmat.cli utils docs --name medmat --title 'CLI reference' "
        "--output docs/cli.md`")


def test_errata_page_is_current():
    registry, problems = validate()
    assert not problems
    assert (DOCS / "errata.md").read_text() == errata_markdown(registry), "docs/errata.md is stale: run `medmat errata > docs/errata.md`"


def test_readme_commands_match_ci():
    readme = (DOCS.parent / "README.md").read_text()
    ci = (DOCS.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in readme, "the README's test command and .ci/run differ"
