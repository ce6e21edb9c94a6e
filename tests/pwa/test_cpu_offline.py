"""Every device answers offline: Chromium WITHOUT WebGPU, the built app (default model) served by a plain static
server that has no /v1 API, installs, goes offline and answers "What is the capital of France?" with Paris, computed
on this device's CPU (the WebAssembly engine); nothing reaches the network after the install."""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_page import AppPage

from app.build import build

# no engine preference (the app chooses by itself), answers long enough for the sentence, fast retries
OPTIONS = {"retryBaseMs": 20, "retryMaxMs": 100, "maxTokens": 24}
SCREENSHOTS = os.environ.get("FIELDLLM_SCREENSHOTS")  # a folder: the test leaves its screenshots there


class PlainServer:
    """Python's http.server over dist/: what any static host does (its types from mimetypes: application/wasm for
    .wasm), no /v1 API, no content-security-policy, no ranges. Records every request path."""

    def __init__(self, root: Path) -> None:
        log: list[str] = []
        self.log = log

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.append(self.path.split("?")[0])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def plain(smollm2_package: Path, engine_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainServer]:
    dist = build([smollm2_package], tmp_path_factory.mktemp("cpu") / "dist", engine_dir=engine_dir).out
    server = PlainServer(dist)
    yield server
    server.stop()


def _shot(app: AppPage, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        app.page.screenshot(path=str(Path(SCREENSHOTS) / name), full_page=True)


@pytest.mark.slow
def test_without_webgpu_the_cpu_engine_installs_and_answers_offline(browser_without_webgpu: Any,
                                                                   plain: PlainServer) -> None:
    context = browser_without_webgpu.new_context(viewport={"width": 900, "height": 900})
    context.add_init_script(f"globalThis.FIELDLLM_OPTIONS = {json.dumps(OPTIONS)};")
    seen: list[Any] = []  # every request the page and its workers make, answered from anywhere
    context.on("request", lambda r: seen.append(r))
    try:
        app = AppPage(context, plain)  # type: ignore[arg-type]
        app.open()
        assert app.page.evaluate("async () => !navigator.gpu || !(await navigator.gpu.requestAdapter())"), \
            "this Chromium has a WebGPU adapter: the test would not show the CPU path"
        assert app.wait_problem_or("setup") == "setup", app.problem_text()
        assert app.text("#setup-engine") == "this device's CPU (WebAssembly)"
        _shot(app, "cpu-setup.png")
        app.page.click("#setup-download")
        assert app.wait_problem_or("ready", timeout=300_000) == "ready", app.problem_text()
        assert app.text("#ready-where") == "this device's CPU (WebAssembly), offline"
        assert app.page.get_attribute("body", "data-compute") == "cpu"
        # a plain host sends no COOP/COEP: this first visit is not cross-origin isolated, so one thread
        assert app.page.evaluate("crossOriginIsolated") is False
        assert app.page.get_attribute("body", "data-threads") == "1"
        notice = app.text("#notice")
        assert "computed on this device's CPU" in notice and "WebGPU" in notice, notice
        assert "on this device's CPU" in app.text("#foot-text")
        app.wait_controlled()
        # the engine came from the server as WebAssembly, once, and the service worker keeps it (sha256-checked)
        wasm = [r for r in seen if r.url.endswith("/app/engine/cpu/cpu_engine.wasm") and r.response()
                and not r.response().from_service_worker]
        assert wasm and wasm[0].response().headers["content-type"] == "application/wasm"
        # the first start timed a few tokens: what to expect
        app.page.wait_for_selector("#ready-speed:text-matches('^about .* (per second|seconds)$')", timeout=120_000)
        assert plain.log.count("/v1/models") == 0 and not [p for p in plain.log if p.startswith("/v1/")]

        app.go_offline()
        plain.log.clear()
        offline_from = len(seen)
        app.page.reload()
        assert app.wait_problem_or("ready", timeout=300_000) == "ready", app.problem_text()
        assert "Offline" in app.text("#net-status")
        # from the service worker, which adds COOP/COEP to the shell: isolated now, so the engine runs on the cores
        # (at most 4), in the threaded build (precached with the shell: it came from the cache, offline)
        assert app.page.evaluate("crossOriginIsolated") is True
        threads = min(4, app.page.evaluate("navigator.hardwareConcurrency"))
        assert app.page.get_attribute("body", "data-threads") == str(threads)
        many = f", {threads} threads" if threads > 1 else ""
        assert app.text("#ready-where") == f"this device's CPU (WebAssembly){many}, offline"
        if threads > 1:
            assert [r for r in seen[offline_from:] if r.url.endswith("/app/engine/cpu/cpu_engine_mt.wasm")]
        # a figure per thread count: with one thread it is the stored one, not measured again
        app.page.wait_for_selector("#ready-speed:text-matches('^about .* (per second|seconds)$')", timeout=120_000)
        answer = app.ask("What is the capital of France?", timeout=300)
        assert "Paris" in answer, answer
        _shot(app, "cpu-offline-answer.png")

        after = seen[offline_from:]
        not_from_sw = [r.url for r in after if not (r.response() and r.response().from_service_worker)]
        assert not_from_sw == [], not_from_sw
        # as in test_offline: the browser's own sw.js update check and the service worker's models/index.json check
        # escape Playwright's offline emulation (on a device without network both fail); nothing else may arrive
        assert [p for p in plain.log if p not in ("/sw.js", "/models/index.json")] == [], plain.log
        assert app.errors == [], app.errors
    finally:
        context.close()
