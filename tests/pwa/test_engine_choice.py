"""The engine chosen on the device, as the screen shows it: a fallback WebGPU adapter (SwiftShader: WebGPU emulated
on the CPU) is passed over for the CPU engine by default, and a GPU too small for the model leaves it to the CPU
engine, which then answers; the screen says why, and no weight is fetched twice."""

from __future__ import annotations

from typing import Any

import pytest
from pwa_env import SMALL_GPU

# the site states no preference: the app chooses by itself (pwa_env.APP_OPTIONS prefers WebGPU for the other tests)
AUTO = "globalThis.FIELDLLM_OPTIONS = {...globalThis.FIELDLLM_OPTIONS, engine: 'auto'};"


@pytest.mark.slow
def test_a_fallback_adapter_is_not_a_gpu_the_cpu_engine_answers(new_app: Any, server: Any) -> None:
    app = new_app(init_script=AUTO)
    app.open()
    info = app.page.evaluate("""async () => {
      const a = await navigator.gpu?.requestAdapter();
      return a && {architecture: a.info.architecture, vendor: a.info.vendor, fallback: !!a.info.isFallbackAdapter};
    }""")
    assert info, "this Chromium has no WebGPU adapter: the test needs SwiftShader"
    assert app.wait_problem_or("setup") == "setup", app.problem_text()
    assert app.text("#setup-engine") == "this device's CPU (WebAssembly)", info
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    assert app.text("#ready-where") == "this device's CPU (WebAssembly), offline"
    notice = app.text("#notice")
    assert "computed on this device's CPU" in notice and "runs on the CPU, not a GPU" in notice, (notice, info)
    assert app.ask("Generator 2 tripped on overcurrent. What should I check?").strip()
    assert app.errors == []


@pytest.mark.slow
def test_a_gpu_too_small_for_the_model_leaves_it_to_the_cpu_engine(new_app: Any, server: Any) -> None:
    app = new_app(init_script=SMALL_GPU)  # the site prefers WebGPU (APP_OPTIONS); this GPU cannot hold the model
    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    assert app.text("#ready-where") == "this device's CPU (WebAssembly), offline"
    assert "this GPU allows" in app.text("#notice")
    assert app.ask("Generator 2 tripped on overcurrent. What should I check?").strip()
    weights = server.requests("/models/*/weights-*")
    assert weights and len(weights) == len(set(weights)), weights  # downloaded once, then read from the store
    assert app.errors == []
