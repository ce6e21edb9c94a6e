"""A static server for dist/ that the tests control: it logs every request, and can cut the network after some
files, serve a file damaged, hold responses back, answer 500, drop connections without an answer, or switch to
another dist/ (publishing a new version). It answers byte ranges (`Range: bytes=N-`, as `fieldllm serve` does)
only when `ranges` is set, so that the other tests see a server that ignores them.

It sends the content-security-policy `fieldllm build` recommends (build-info.json), so that the tests also show the
page runs under `script-src 'self'` plus the import map's hash.
"""

from __future__ import annotations

import fnmatch
import json
import mimetypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
         ".webmanifest": "application/manifest+json", ".wgsl": "text/plain", ".bin": "application/octet-stream",
         ".html": "text/html; charset=utf-8", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml",
         ".wasm": "application/wasm"}


@dataclass
class Fault:
    """What to do to requests whose path matches `pattern` (fnmatch, e.g. "/models/*/weights-*")."""

    pattern: str
    kind: str  # "cut": send half the body then drop the connection; "corrupt": flip a byte; "hold": wait;
    #            "status": answer HTTP 500; "drop": close the connection without an answer (the server is away)
    after: int = 0  # let this many matching requests through untouched first
    times: int | None = None  # how many requests to affect (None: all)
    linger: float = 0.0  # "cut": seconds between the half body and the drop (so that the browser reads the half)
    seen: int = 0
    done: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def applies(self, path: str) -> bool:
        if not fnmatch.fnmatch(path, self.pattern):
            return False
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.done >= self.times):
            return False
        self.done += 1
        return True


class DistServer:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.log: list[str] = []  # request paths, in arrival order
        self.completed: list[str] = []  # paths whose full body was sent
        self.faults: list[Fault] = []
        self.ranges = False  # answer Range requests with 206
        self.range_requests: list[tuple[str, str]] = []  # (path, Range header) of requests that carried one
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- control ---------------------------------------------------------------------------------------------------

    def start(self) -> DistServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        for f in self.faults:
            f.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str = "/") -> str:
        return self.origin + path

    def publish(self, root: Path) -> None:
        """Serve another dist/ from now on (what deploying a rebuilt app or a new model version looks like)."""
        self.root = Path(root)

    def fault(self, pattern: str, kind: str, after: int = 0, times: int | None = None, linger: float = 0.0) -> Fault:
        f = Fault(pattern, kind, after, times, linger)
        with self.lock:
            self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self.lock:
            for f in self.faults:
                f.release.set()
            self.faults.clear()

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()
            self.completed.clear()

    def requests(self, pattern: str = "*") -> list[str]:
        with self.lock:
            return [p for p in self.log if fnmatch.fnmatch(p, pattern)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError("the server did not see what the test waited for")
            time.sleep(0.02)

    # --- serving ---------------------------------------------------------------------------------------------------

    def _csp(self) -> str | None:
        try:
            return str(json.loads((self.root / "build-info.json").read_text())["content_security_policy"])
        except (OSError, ValueError, KeyError):
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                path = unquote(urlsplit(self.path).path)
                with server.lock:
                    server.log.append(path)
                    fault = next((f for f in server.faults if f.applies(path)), None)
                if fault and fault.kind == "hold":
                    fault.release.wait(60)
                if fault and fault.kind == "drop":
                    self.close_connection = True
                    return
                if fault and fault.kind == "status":
                    self.send_error(500)
                    return
                asked = self.headers.get("Range")
                if asked:
                    with server.lock:
                        server.range_requests.append((path, asked))
                rel = "index.html" if path.endswith("/") else path.lstrip("/")
                file = (server.root / rel).resolve()
                if server.root.resolve() not in file.parents or not file.is_file():
                    self.send_error(404)
                    return
                data = file.read_bytes()
                if fault and fault.kind == "corrupt" and data:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                start = _range_start(asked) if server.ranges and asked else None
                if start is not None and start < len(data):
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    data = data[start:]
                else:
                    self.send_response(200)
                ctype = TYPES.get(file.suffix) or mimetypes.guess_type(file.name)[0] or "application/octet-stream"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-cache")
                csp = server._csp()
                if csp and file.suffix == ".html":
                    self.send_header("Content-Security-Policy", csp)
                self.end_headers()
                if fault and fault.kind == "cut":
                    # the network goes away half-way through the body
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    time.sleep(fault.linger)
                    self.close_connection = True
                    return
                self.wfile.write(data)
                with server.lock:
                    server.completed.append(path)

        return Handler


def _range_start(header: str) -> int | None:
    """The N of "bytes=N-" (the only form the app sends), else None."""
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    return int(first) if unit.strip() == "bytes" and dash and not last and first.isdigit() else None
