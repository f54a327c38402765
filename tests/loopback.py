"""A real HTTP server on 127.0.0.1 for download tests: routes are small functions, every request is logged."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: bytes = b""


@dataclass
class Loopback:
    server: ThreadingHTTPServer
    routes: dict = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path.split("?")[0] == path]


def send_bytes(h: BaseHTTPRequestHandler, data: bytes, *, content_type="application/octet-stream",
               ranges=True, etag='"v1"', cut_at: int | None = None, status: int | None = None) -> None:
    """Serve `data`, honouring `Range: bytes=N-` (206); `cut_at` drops the connection after that many bytes."""
    start = 0
    rng = h.headers.get("Range")
    if ranges and rng and rng.startswith("bytes=") and (h.headers.get("If-Range") in (None, etag)):
        start = int(rng[6:].split("-")[0])
        if start >= len(data):
            h.send_response(416)
            h.send_header("Content-Range", f"bytes */{len(data)}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(206)
        h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    else:
        h.send_response(status or 200)
    body = data[start:]
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    if ranges:
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", etag)
    h.end_headers()
    if cut_at is not None:
        h.wfile.write(body[:cut_at])
        h.wfile.flush()
        h.close_connection = True
        return
    h.wfile.write(body)


def send_status(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict | None = None,
                content_type: str = "text/plain") -> None:
    h.send_response(status)
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def start() -> Loopback:
    box: dict = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            lb: Loopback = box["lb"]
            lb.seen.append(Seen(self.command, self.path, dict(self.headers), body))
            route = lb.routes.get(self.path.split("?")[0])
            if route is None:
                send_status(self, 404, b"no such route")
                return
            route(self)

        do_GET = do_POST = _handle

        def log_message(self, *args):  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    lb = Loopback(server)
    box["lb"] = lb
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return lb
