"""A real Hugging Face Hub-protocol server on 127.0.0.1 for tests: `olah` (a self-hosted Hub mirror) serving local
git repositories offline, so `huggingface_hub` and `datasets` talk to it exactly as they talk to the Hub
(`HF_ENDPOINT` pointed at it): repo info, tree listings, `resolve` downloads with HTTP ranges, `paths-info`.

`HubMirror(tmp)` -> `.add(folder, "org/name")` commits a hub folder (as a git repo, which is what a Hub dataset
repo is) -> `with mirror:` starts `olah` in its own process and stops it when the block ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

_GIT_ENV = {"GIT_AUTHOR_NAME": "medmat tests", "GIT_AUTHOR_EMAIL": "tests@medmat.invalid",
            "GIT_COMMITTER_NAME": "medmat tests", "GIT_COMMITTER_EMAIL": "tests@medmat.invalid",
            "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubMirror:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None

    def add(self, folder: Path, repo_id: str) -> None:
        """Commit every file of `folder` to the git repo `datasets/<repo_id>` that olah serves (no copy: the
        folder is the work tree)."""
        git_dir = self.mirrors / "datasets" / repo_id
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **_GIT_ENV}
        base = ["git", f"--git-dir={git_dir}", f"--work-tree={folder}"]
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(git_dir)], check=True, env=env)
        subprocess.run([*base, "add", "-A", "."], check=True, env=env, cwd=folder)
        subprocess.run([*base, "commit", "-q", "-m", "hub folder"], check=True, env=env, cwd=folder)

    def __enter__(self) -> HubMirror:
        config = self.root / "olah.toml"
        config.write_text(f'[basic]\nhost = "127.0.0.1"\nport = {self.port}\nrepos-path = "{self.root / "cache"}"\n'
                          f'mirror-netloc = "127.0.0.1:{self.port}"\nmirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
                          f'mirrors-path = ["{self.mirrors}"]\n\n[accessibility]\noffline = true\n')
        self._log = open(self.root / "olah.log", "wb")
        self._proc = subprocess.Popen([sys.executable, "-c", "from olah.server import cli; cli()", "--config",
                                       str(config), "--log-path", str(self.root / "logs")],
                                      stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=1)
                return self
            except OSError as exc:
                if getattr(exc, "code", None):  # an HTTP error status: the server is up
                    return self
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("olah did not start within 60 s")

    def __exit__(self, *exc) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def env(self, home: Path) -> dict[str, str]:
        """The environment of a client process that talks to this server and nothing else."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE"))}
        return env | {"HF_ENDPOINT": self.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1",
                      "HF_HUB_DISABLE_XET": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
