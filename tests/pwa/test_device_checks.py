"""Honest refusals before any download: too little storage, no engine of this device that can run the model (no
WebGPU, or a GPU too small, and no WebAssembly for the CPU engine). And the app is installable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app_page import AppPage
from pwa_env import CHROMIUM, NO_WASM, SMALL_GPU, WEBGPU_ARGS

# what navigator.storage.estimate() says on a nearly full phone: 50 MB quota, 49.9 MB used
SMALL_QUOTA = """
Object.defineProperty(StorageManager.prototype, 'estimate', {
  value: async () => ({quota: 50e6, usage: 49.9e6}), configurable: true,
});
"""


def test_too_little_storage_says_so_and_downloads_nothing(new_app: Any, server: Any) -> None:
    app = new_app(init_script=SMALL_QUOTA)
    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "storage-full"
    text = app.problem_text()
    assert "Not enough storage" in text and "Free space" in text and "Nothing was downloaded" in text
    assert server.requests("/models/*") == ["/models/index.json"]  # the list of versions, and no model file
    store = app.store()
    assert store["state"] is None
    assert not any(urls for name, urls in store["caches"].items() if name.startswith("fieldllm-model:"))


def test_gpu_too_small_for_the_model_says_why_before_the_weights(new_app: Any, server: Any, dists: Any) -> None:
    app = new_app(init_script=SMALL_GPU + NO_WASM)
    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "device-unsupported"
    text = app.problem_text()
    assert "cannot run the on-device model" in text and "this GPU allows" in text and "Nothing was downloaded" in text
    assert "the CPU engine: this browser has no WebAssembly" in text
    # the manifest (a few kB, needed to know the model's needs) and nothing else of the model
    manifests = server.requests("/models/*/manifest.json")
    assert manifests, "the manifest was never fetched, so the refusal did not come from the model's needs"
    assert [p for p in server.requests("/models/*") if p != "/models/index.json"] == manifests
    assert server.requests("/models/*/weights-*") == []


def test_no_webgpu_and_no_webassembly_explains_and_downloads_nothing(new_app: Any, server: Any,
                                                                    browser_without_webgpu: Any) -> None:
    app = new_app(init_script=NO_WASM, browser_=browser_without_webgpu)
    app.open()
    assert app.wait_problem_or("setup") == "device-unsupported"
    text = app.problem_text()
    assert "cannot run the on-device model" in text and "WebGPU" in text and "Nothing was downloaded" in text
    assert "no WebAssembly" in text
    assert server.requests("/models/*") == ["/models/index.json"]


def test_the_app_is_installable(playwright: Any, server: Any, tmp_path: Path) -> None:
    # a persistent profile: Chromium never offers installation in an incognito context (Playwright's default)
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path / "profile"), executable_path=CHROMIUM, args=WEBGPU_ARGS)
    try:
        app = AppPage(context, server)
        app.open().wait_state("setup")
        app.wait_controlled()
        cdp = context.new_cdp_session(app.page)
        assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
        assert cdp.send("Page.getAppManifest")["errors"] == []
    finally:
        context.close()
