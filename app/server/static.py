"""The built app folder: exact MIME types, cache headers by file kind, and a how-to page while it is not built.

Cache rule (browsers and the service worker both follow it):
- ``no-cache`` (always revalidate; ETag/Last-Modified make that a 304) for the files that name other files and so
  must never be stale: ``sw.js``, every ``.html`` page, web app manifests (``*.webmanifest``, ``manifest.json``).
- ``public, max-age=31536000, immutable`` for content-hashed files: one of the dot-separated parts of the file
  name before its extension, or the name of a folder it sits under, is a hash: 8 to 64 lower-case hex digits with at
  least one digit and one letter a-f (``engine.3f9a1c2b.js``, ``3f9a1c2b7e.js``, ``assets/0c4e8d1a9b7f/x.wasm``).
  Requiring both keeps dates (``20261123``) and hex-letter words (``deadbeef``, ``facade``) out; a real hash that
  happens to be all digits or all letters merely misses the long cache.
- ``no-cache`` for everything else, so a rebuilt app is never half old.

Byte ranges: Starlette's ``FileResponse`` answers ``Range: bytes=N-`` with 206 and ``Content-Range`` (and honours
``If-Range`` against its ETag), which is how the app's downloader continues a model shard cut half-way
(app/ui/file_fetch.js; tests/pwa/test_faults.py checks it against this server).
"""

from __future__ import annotations

import html
import mimetypes
import os
import re
from pathlib import Path, PurePosixPath

from starlette.datastructures import Headers
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Receive, Scope, Send

from .errors import APIError

# Exact types for what the app ships; Python's mimetypes table varies by platform and lacks .wgsl/.webmanifest.
MEDIA_TYPES = {
    ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
    ".json": "application/json", ".map": "application/json", ".wasm": "application/wasm", ".wgsl": "text/wgsl",
    ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml", ".png": "image/png",
    ".ico": "image/x-icon", ".webp": "image/webp", ".woff2": "font/woff2", ".txt": "text/plain",
    ".bin": "application/octet-stream",
}
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
_NEVER_STALE_NAMES = {"sw.js", "manifest.json"}
_HASH = re.compile(r"(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,64}")


def media_type(path: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def is_hashed(path: str) -> bool:
    parts = PurePosixPath(path).parts
    folders, name = parts[:-1], parts[-1] if parts else ""
    return any(_HASH.fullmatch(p) for p in folders) or any(_HASH.fullmatch(p) for p in name.split(".")[:-1])


def cache_control(path: str) -> str:
    name = PurePosixPath(path).name
    if name in _NEVER_STALE_NAMES or name.endswith((".html", ".webmanifest")):
        return NO_CACHE
    return IMMUTABLE if is_hashed(path) else NO_CACHE


class _Files(StaticFiles):
    def file_response(self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope,
                      status_code: int = 200) -> Response:
        relative = os.path.relpath(full_path, os.path.realpath(str(self.directory))).replace(os.sep, "/")
        response = FileResponse(full_path, status_code, {"cache-control": cache_control(relative)},
                                media_type(relative), stat_result=stat_result)
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


class AppFiles:
    """Serves ``dist``; checks on every request whether it exists, so building the app needs no restart."""

    def __init__(self, dist: Path):
        self.dist = dist
        self.files = _Files(directory=dist, html=True, check_dir=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):  # also what an API path answers to a method it does not take
            raise APIError(405, f"{scope['method']} is not allowed on {scope['path']}", headers={"Allow": "GET, HEAD"})
        if self.dist.is_dir():
            await self.files(scope, receive, send)
        elif scope["path"] == "/":
            await self.not_built()(scope, receive, send)
        else:
            raise APIError(404, f"nothing at {scope['path']} (the app is not built yet; see /)")

    def not_built(self) -> Response:
        where = html.escape(str(self.dist.resolve()))
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>fieldllm: app not built</title>"
            "<h1>The app is not built yet</h1>"
            f"<p>There is no app folder at <code>{where}</code>. Build it with <code>fieldllm build</code>, "
            "or start the server with <code>fieldllm serve --dist DIR</code> pointing at a built app. "
            "The page appears here once the folder exists; no restart is needed.</p>"
            "<p>The OpenAI-compatible API works meanwhile: <code>POST /v1/chat/completions</code>, "
            "<code>GET /v1/models</code>, schema at <a href=/openapi.json>/openapi.json</a>.</p></html>"
        )
        return HTMLResponse(page, headers={"cache-control": NO_CACHE})
