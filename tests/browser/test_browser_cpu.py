"""The CPU engine (app/engine/cpu: the .wasm builds + model.js) in Chromium WITHOUT WebGPU, against the numpy reference
engine, on one thread and on two: greedy token ids of the default model for the shared chats (tests/chats.py, as the
WebGPU test), and a tiny random model's logits within 1e-3. Two threads need SharedArrayBuffer, so that page comes
from a second server on the same folder that sends the app's cross-origin isolation headers (COOP/COEP); the one-thread
page comes from the plain server, where the engine must fall back to one thread by itself."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from browser_harness import (
    HOST,
    ROOT,
    Harness,
    Site,
    assert_greedy_matches_reference,
    assert_logits_match_reference,
    start_server,
)

from app.server.headers import CROSS_ORIGIN_ISOLATION


@pytest.fixture(scope="module")
def isolated_url(site: Site) -> Iterator[str]:
    subprocess.run([str(ROOT / "scripts/build_wasm.sh")], check=True, capture_output=True)  # never a stale module
    server, url = start_server(site.root, CROSS_ORIGIN_ISOLATION)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def cpu_harness(request: pytest.FixtureRequest, browser_without_webgpu: Any, site: Site,
                isolated_url: str) -> Iterator[tuple[Harness, int]]:
    """The harness page in a Chromium that has no WebGPU adapter, isolated for 2 threads; fails the test if a request
    left its server."""
    threads: int = request.param
    url = isolated_url if threads > 1 else site.url
    context = browser_without_webgpu.new_context()
    page = context.new_page()
    h = Harness(page, Site(site.root, url, site.models))
    context.on("request", lambda r: h.requests.append(r.url))
    page.on("console", lambda m: h.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: h.console.append(f"pageerror: {e}"))
    page.set_default_timeout(300_000)
    page.goto(f"{url}/harness/harness.html")
    page.wait_for_function("window.harness !== undefined", timeout=30_000)
    assert page.evaluate("async () => !navigator.gpu || !(await navigator.gpu.requestAdapter())"), \
        "this Chromium has a WebGPU adapter: the test would not show the CPU engine alone"
    assert page.evaluate("crossOriginIsolated") is (threads > 1)
    yield h, threads
    context.close()
    assert not h.foreign_requests(), f"requests left {HOST}: {h.foreign_requests()}"


@pytest.mark.slow
def test_cpu_engine_greedy_ids_match_reference_without_webgpu(cpu_harness: tuple[Harness, int], smollm2: str) -> None:
    harness, threads = cpu_harness
    # 2 threads asked of the plain page too: without SharedArrayBuffer it must run on one, not fail
    info = assert_greedy_matches_reference(harness, smollm2, {"context": 512, "engine": "cpu", "threads": 2})
    assert info["engine"] == "cpu" and info["adapter"] is None and info["threads"] == threads, info
    wasm = "cpu_engine_mt.wasm" if threads > 1 else "cpu_engine.wasm"
    assert any(u.endswith(f"/app/engine/cpu/{wasm}") for u in harness.requests), harness.requests


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "weights"), [("llama", "q4"), ("qwen2", "q4+v8")])
def test_cpu_engine_tiny_logits_match_reference(cpu_harness: tuple[Harness, int], tiny: Any, arch: str,
                                                weights: str) -> None:
    harness, threads = cpu_harness
    load = {"passTokens": 128, "engine": "cpu", "threads": threads}
    assert_logits_match_reference(harness, tiny(arch, weights), load)
