"""A local stand-in for the Hugging Face Hub's upload API, served on 127.0.0.1 by the tests that use it.

It answers the calls `huggingface_hub` 2.x makes for `create_repo`, `create_branch`, `repo_info` and
`upload_folder`: repo creation, README YAML validation, `preupload` (every file is "regular", so no LFS or Xet
transfer is ever attempted), and the NDJSON `commit` endpoint, whose files it keeps in memory per branch.
Every request must carry the expected token, as the real Hub requires; `fail_commits_after` makes later commits
fail, to simulate an upload cut off part-way.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

_REPO = r"(?P<type>model|dataset|space)s/(?P<repo>[^/]+/[^/]+)"
_ACTION = re.compile(rf"^/api/{_REPO}/(?P<action>preupload|commit|branch)/(?P<rev>.+)$")
_INFO = re.compile(rf"^/api/{_REPO}(?:/revision/(?P<rev>.+))?$")


def git_blob_sha1(content: bytes) -> str:
    """The oid git (and the Hub) gives a regular file; the client compares it to skip unchanged files."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    branch: str
    summary: str
    added: list[str]
    deleted: list[str]
    oid: str


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    heads: dict[str, str] = field(default_factory=lambda: {"main": "0" * 40})
    commits: list[Commit] = field(default_factory=list)

    def write_tree(self, dest: Path, branch: str = "main") -> Path:
        """Materialise a branch's files on disk (what a clone of the repo would hold)."""
        for path, content in self.branches[branch].items():
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        return dest


class HubStandIn:
    """`with HubStandIn(token) as hub:` serves on `hub.url` until the block ends."""

    def __init__(self, token: str):
        self.token = token
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.fail_commits_after: int | None = None  # commits accepted before every later one fails
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    # -- request handling --------------------------------------------------------------------------

    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                hub._dispatch(self, "GET")

            def do_POST(self) -> None:
                hub._dispatch(self, "POST")

            def do_HEAD(self) -> None:
                hub._dispatch(self, "HEAD")

        return Handler

    def _dispatch(self, req: BaseHTTPRequestHandler, method: str) -> None:
        path = urlsplit(req.path).path
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        with self._lock:
            self.requests.append((method, path))
            if req.headers.get("Authorization") != f"Bearer {self.token}":
                return _reply(req, 401, {"error": "Invalid credentials in Authorization header"})
            try:
                status, payload = self._route(method, path, body)
            except Exception as exc:  # a bug in the stand-in must show up as a failure, not a hang
                status, payload = 500, {"error": f"stand-in error: {exc!r}"}
        _reply(req, status, payload)

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        if method == "POST" and path == "/api/repos/create":
            return self._create_repo(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if m := _ACTION.match(path):
            repo = self.repos.get((m["type"], m["repo"]))
            if repo is None:
                return 404, {"error": "Repository not found"}
            rev = unquote(m["rev"])
            if method == "POST" and m["action"] == "branch":
                return self._create_branch(repo, rev)
            if rev not in repo.branches:
                return 404, {"error": f"Invalid rev id: {rev}"}
            if method == "POST" and m["action"] == "preupload":
                return self._preupload(repo, rev, json.loads(body))
            if method == "POST" and m["action"] == "commit":
                return self._commit(repo, rev, body)
        if method == "GET" and (m := _INFO.match(path)):
            repo = self.repos.get((m["type"], m["repo"]))
            if repo is None:
                return 404, {"error": "Repository not found"}
            rev = unquote(m["rev"] or "main")
            if rev not in repo.branches:
                return 404, {"error": f"Invalid rev id: {rev}"}
            return 200, {"id": repo.repo_id, "sha": repo.heads[rev], "private": repo.private,
                         "siblings": [{"rfilename": p} for p in sorted(repo.branches[rev])]}
        self.unhandled.append((method, path))
        return 404, {"error": f"stand-in does not implement {method} {path}"}

    def _create_repo(self, payload: dict) -> tuple[int, dict]:
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        url = f"{self.url}/{repo_type}s/{repo_id}"
        if (repo_type, repo_id) in self.repos:
            return 409, {"error": "You already created this repo", "url": url}
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        self.repos[(repo_type, repo_id)] = Repo(repo_id, repo_type, private)
        return 200, {"url": url, "name": repo_id}

    def _validate_yaml(self, payload: dict) -> tuple[int, dict]:
        content = payload.get("content", "")
        match = re.match(r"^---\n(.*?)\n---", content, re.S)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as exc:
            return 400, {"errors": [{"message": f"invalid YAML: {exc}"}], "warnings": []}
        if not isinstance(meta, dict):
            return 400, {"errors": [{"message": "the YAML block must be a mapping"}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def _create_branch(self, repo: Repo, branch: str) -> tuple[int, dict]:
        if branch in repo.branches:
            return 409, {"error": f"Reference already exists: refs/heads/{branch}"}
        repo.branches[branch] = dict(repo.branches["main"])
        repo.heads[branch] = repo.heads["main"]
        return 200, {}

    def _preupload(self, repo: Repo, rev: str, payload: dict) -> tuple[int, dict]:
        tree = repo.branches[rev]
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": git_blob_sha1(tree[f["path"]]) if f["path"] in tree else None}
                 for f in payload["files"]]
        return 200, {"files": files, "commitOid": repo.heads[rev]}

    def _commit(self, repo: Repo, rev: str, body: bytes) -> tuple[int, dict]:
        if self.fail_commits_after is not None and len(repo.commits) >= self.fail_commits_after:
            return 400, {"error": "simulated outage: commit refused"}
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        added, deleted = [], []
        tree = dict(repo.branches[rev])
        for item in lines:
            value = item["value"]
            if item["key"] == "file":
                if value.get("encoding") != "base64":
                    return 400, {"error": "stand-in expects base64 file content"}
                tree[value["path"]] = base64.b64decode(value["content"])
                added.append(value["path"])
            elif item["key"] in ("deletedFile", "deletedFolder"):
                prefix = value["path"].rstrip("/") + "/"
                for p in [p for p in tree if p == value["path"] or p.startswith(prefix)]:
                    del tree[p]
                deleted.append(value["path"])
            elif item["key"] != "header":
                return 400, {"error": f"stand-in cannot store {item['key']!r} entries (no LFS/Xet)"}
        oid = hashlib.sha1(f"{repo.heads[rev]}{header['summary']}{sorted(added)}".encode()).hexdigest()
        repo.branches[rev] = tree
        repo.heads[rev] = oid
        repo.commits.append(Commit(rev, header["summary"], added, deleted, oid))
        return 200, {"commitUrl": f"{self.url}/{repo.repo_type}s/{repo.repo_id}/commit/{oid}",
                     "commitOid": oid, "pullRequestUrl": None}


def _reply(req: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    req.send_response(status)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", str(len(data)))
    req.end_headers()
    req.wfile.write(data)
