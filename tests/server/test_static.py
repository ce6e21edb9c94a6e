"""The app folder: MIME types, cache headers by file kind, and the how-to page while the app is not built."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.server.static import IMMUTABLE, NO_CACHE, cache_control, is_hashed

from .conftest import fake_app

FILES = {
    "index.html": "<!doctype html><title>fieldllm</title>",
    "sw.js": "self.addEventListener('install', () => {});",
    "app.webmanifest": "{}",
    "engine.mjs": "export {};",
    "ui.js": "export {};",
    "shaders/matvec.wgsl": "@compute @workgroup_size(1) fn main() {}",
    "vendor/tokenizer.3f9a1c2b.wasm": "\0asm",
    "app/engine/cpu/cpu_engine.wasm": "\0asm",
    "assets/0c4e8d1a9b7f/logo.svg": "<svg/>",
    "models/smollm2/manifest.json": "{}",
    "style.css": "body{}",
}


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.fixture
def files(dist: Path) -> TestClient:
    return TestClient(fake_app(dist=dist))


@pytest.mark.parametrize(("path", "mime", "cache"), [
    ("/", "text/html; charset=utf-8", NO_CACHE),
    ("/index.html", "text/html; charset=utf-8", NO_CACHE),
    ("/sw.js", "text/javascript; charset=utf-8", NO_CACHE),
    ("/app.webmanifest", "application/manifest+json", NO_CACHE),
    ("/engine.mjs", "text/javascript; charset=utf-8", NO_CACHE),
    ("/ui.js", "text/javascript; charset=utf-8", NO_CACHE),
    ("/shaders/matvec.wgsl", "text/wgsl; charset=utf-8", NO_CACHE),
    ("/vendor/tokenizer.3f9a1c2b.wasm", "application/wasm", IMMUTABLE),
    ("/app/engine/cpu/cpu_engine.wasm", "application/wasm", NO_CACHE),  # the CPU engine, as fieldllm build ships it
    ("/assets/0c4e8d1a9b7f/logo.svg", "image/svg+xml", IMMUTABLE),
    ("/models/smollm2/manifest.json", "application/json", NO_CACHE),
    ("/style.css", "text/css; charset=utf-8", NO_CACHE),
])
def test_types_and_cache_headers(files: TestClient, path: str, mime: str, cache: str) -> None:
    r = files.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == mime
    assert r.headers["cache-control"] == cache
    assert r.headers["x-content-type-options"] == "nosniff"


def test_revalidation_keeps_the_cache_header(files: TestClient) -> None:
    first = files.get("/sw.js")
    again = files.get("/sw.js", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == NO_CACHE


def test_missing_files_and_escapes(files: TestClient) -> None:
    for path in ("/nope.js", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/shaders/../../secret"):
        r = files.get(path)
        assert r.status_code == 404 and r.json()["error"]["message"]
    assert files.post("/index.html").status_code == 405


def test_hash_rule() -> None:
    assert is_hashed("engine.3f9a1c2b.js") and is_hashed("a/b/deadbeef01/x.js")
    assert is_hashed("chunk-x.0123456789abcdef0123456789abcdef.mjs")
    assert not is_hashed("report.20261123.json")  # a date: digits only
    assert not is_hashed("deadbeef.js") and not is_hashed("facade/cafebabe.js")  # hex letters only
    assert not is_hashed("engine.3f9a.js")  # too short to be a content hash
    assert is_hashed("3f9a1c2b7e.js")  # named by its hash alone
    assert cache_control("sw.js") == NO_CACHE and cache_control("a1b2c3d4e5/index.html") == NO_CACHE


def test_not_built_page_then_built_without_restart(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    with TestClient(fake_app(dist=dist)) as client:
        r = client.get("/")
        assert r.status_code == 200 and "fieldllm build" in r.text and str(dist) in r.text
        assert r.headers["cache-control"] == NO_CACHE
        assert "<script" not in r.text  # the CSP would block it anyway
        assert client.get("/app.js").status_code == 404
        assert client.get("/healthz").status_code == 200  # the API works meanwhile
        dist.mkdir()
        (dist / "index.html").write_text("<!doctype html><title>built</title>")
        assert "built" in client.get("/").text
