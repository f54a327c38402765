"""A real Hugging Face Hub-protocol server on 127.0.0.1 for tests: `olah` (a self-hosted Hub mirror) serving local
git repositories offline, so `huggingface_hub` and `datasets` talk to it as they talk to the Hub (`HF_ENDPOINT`
pointed at it): repo info, refs, tree listings, `paths-info`, `resolve` downloads.

olah 0.5.4 answers a `resolve` of a local-mirror file with the whole file and status 200 even when the request
asks for a byte range; `streaming=True` reads Parquet footers and row groups by range (HfFileSystem), and takes
the 200 body as the range, which corrupts the footer. `RangeFront`, a small proxy in front of olah, answers such
requests with 206 and the requested slice (RFC 9110 single ranges) and passes everything else through unchanged.

`HubMirror(tmp)` -> `.add(folder, "org/name")` commits a hub folder (as a git repo, which is what a Hub dataset
repo is) -> `with mirror:` starts `olah` in its own process and the front in a thread, and stops both when the
block ends. `mirror.url` is the front's address.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_GIT_ENV = {"GIT_AUTHOR_NAME": "medmat tests", "GIT_AUTHOR_EMAIL": "tests@medmat.invalid",
            "GIT_COMMITTER_NAME": "medmat tests", "GIT_COMMITTER_EMAIL": "tests@medmat.invalid",
            "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}


class RangeFront:
    """Forward every request to `upstream_port`; a GET with a single `Range` that upstream answered with a full
    200 body gets 206 and the slice instead."""

    def __init__(self, upstream_port: int, port: int):
        self.upstream_port = upstream_port
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status sent)
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                front._forward(self, "GET")

            def do_HEAD(self) -> None:
                front._forward(self, "HEAD")

            def do_POST(self) -> None:
                front._forward(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _forward(self, req: BaseHTTPRequestHandler, method: str) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0)) if method == "POST" else None
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP | {"host", "range"}}
        wanted = req.headers.get("Range")
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=120)
        try:
            if wanted and method == "GET":  # passed on; sliced here only if upstream ignores it (olah 0.5.4 does)
                headers["Range"] = wanted
            conn.request(method, req.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, out_headers = resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP]
        finally:
            conn.close()
        match = _RANGE.match(wanted or "")
        if method == "GET" and status == 200 and match and any(match.groups()):
            size = len(data)
            first, last = match.groups()
            start, end = (size - int(last), size - 1) if not first else (int(first), min(int(last or size - 1), size - 1))
            start = max(start, 0)
            if start >= size:
                status, data, out_headers = 416, b"", [("Content-Range", f"bytes */{size}")]
            else:
                status, data = 206, data[start:end + 1]
                out_headers = [(k, v) for k, v in out_headers if k.lower() != "content-range"] + [
                    ("Content-Range", f"bytes {start}-{end}/{size}")]
        self.requests.append((method, req.path, status))
        req.send_response(status)
        for key, value in out_headers:
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(data)) if method != "HEAD" else
                        dict((k.lower(), v) for k, v in resp.getheaders()).get("content-length", "0"))
        req.end_headers()
        if method != "HEAD":
            req.wfile.write(data)


class HubMirror:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.olah_port = _free_port()
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None
        self.front: RangeFront | None = None

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
        config.write_text(f'[basic]\nhost = "127.0.0.1"\nport = {self.olah_port}\nrepos-path = "{self.root / "cache"}"\n'
                          f'mirror-netloc = "127.0.0.1:{self.port}"\nmirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
                          f'mirrors-path = ["{self.mirrors}"]\n\n[accessibility]\noffline = true\n')
        self._log = open(self.root / "olah.log", "wb")
        self._proc = subprocess.Popen([sys.executable, "-c", "from olah.server import cli; cli()", "--config",
                                       str(config), "--log-path", str(self.root / "logs")],
                                      stdout=self._log, stderr=subprocess.STDOUT, cwd=self.root)
        self.front = RangeFront(self.olah_port, self.port)
        self.front.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.olah_port}/", timeout=1)
                return self
            except OSError as exc:
                if getattr(exc, "code", None):  # an HTTP error status: the server is up
                    return self
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("olah did not start within 60 s")

    def __exit__(self, *exc) -> None:
        if self.front is not None:
            self.front.stop()
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
