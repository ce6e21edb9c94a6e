"""What the browser tests share: a static server on 127.0.0.1, the Playwright page wrapper, Chromium's flags.

The server's root is a temporary folder of symlinks: /app, /webgpu_shaders, /node_modules (the project's own),
/harness (tests/browser/www: the test page) and /models/NAME (packages prepared for the tests). Chromium's WebGPU runs
on SwiftShader (a CPU adapter, no shader-f16) with the flags below; Playwright never downloads a browser here.
"""

from __future__ import annotations

import functools
import http.server
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]

HOST = "127.0.0.1"
MIME = {".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".wgsl": "text/plain",
        ".bin": "application/octet-stream", ".html": "text/html"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not every GET
        pass


@dataclass
class Site:
    root: Path  # the folder served
    url: str  # http://127.0.0.1:PORT
    models: dict[str, Path] = field(default_factory=dict)

    def add_model(self, name: str, package: Path) -> str:
        """Serve a package folder at /models/NAME/; returns NAME."""
        link = self.root / "models" / name
        if not link.exists():
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(package, target_is_directory=True)
        self.models[name] = package
        return name


@dataclass
class Harness:
    """The test page, with every request it (or its worker) made and what it logged."""

    page: Any
    site: Site
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def call(self, fn: str, *args: Any) -> Any:
        """window.harness.fn(...args), awaited; JSON in, JSON out."""
        return self.page.evaluate(f"(args) => window.harness.{fn}(...args)", list(args))

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).scheme not in ("data", "blob")
                and (urlsplit(u).hostname != HOST or not u.startswith(self.site.url))]

    def log(self) -> str:
        return "\n".join(self.console[-40:])


def reference_engine(package: Path) -> Any:
    """model_prep's numpy engine over a package (the ground truth)."""
    from model_prep.reference import load

    return load(package)


def start_server(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve `root` on 127.0.0.1 (a free port) from a daemon thread; returns the server and its base URL."""
    server = http.server.ThreadingHTTPServer((HOST, 0), functools.partial(_Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}"
