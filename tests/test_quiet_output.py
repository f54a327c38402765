"""Output meant for people stays quiet where no person watches: no progress bars when stderr is not a terminal,
and the fake-archive helper's `--help` prints help instead of creating a folder named `--help`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medmat.prepare.source import BuildOptions, build_source
from medmat.validation import validate
from tests.fakes import materialise

ROOT = Path(__file__).resolve().parents[1]


def test_no_progress_bar_when_not_on_a_terminal(tmp_path, capfd):
    registry, _ = validate()
    materialise("kvasir", tmp_path / "data")
    report = build_source(registry, "kvasir", tmp_path / "data", tmp_path / "out", BuildOptions(progress=True))
    assert report["written"] > 0
    _, err = capfd.readouterr()  # pytest's captured stderr is not a tty, like a log file, CI or a notebook stream
    assert "img/s" not in err and "\r" not in err


def test_fakes_help_prints_usage_and_writes_nothing(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "tests.fakes", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: python -m tests.fakes" in done.stdout
    assert list(tmp_path.iterdir()) == []
    bad = subprocess.run([sys.executable, "-m", "tests.fakes", str(tmp_path / "out"), "no-such-source"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no fake archive for no-such-source" in bad.stderr
    assert not (tmp_path / "out").exists()
