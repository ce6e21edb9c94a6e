"""The CPU engine (app/engine/cpu: cpu_engine.wasm + model.js) in Chromium WITHOUT WebGPU, against the numpy reference
engine: greedy token ids of the default model for three chats, 24 tokens each (the same chats as the WebGPU test)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from browser_harness import HOST, ROOT, Harness, Site, reference_engine
from test_browser_engine import CHATS, STEPS, _greedy


@pytest.fixture
def cpu_harness(browser_without_webgpu: Any, site: Site) -> Iterator[Harness]:
    """The harness page in a Chromium that has no WebGPU adapter; fails the test if a request left 127.0.0.1."""
    subprocess.run([str(ROOT / "scripts/build_wasm.sh")], check=True, capture_output=True)  # never a stale module
    context = browser_without_webgpu.new_context()
    page = context.new_page()
    h = Harness(page, site)
    context.on("request", lambda r: h.requests.append(r.url))
    page.on("console", lambda m: h.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: h.console.append(f"pageerror: {e}"))
    page.set_default_timeout(300_000)
    page.goto(f"{site.url}/harness/harness.html")
    page.wait_for_function("window.harness !== undefined", timeout=30_000)
    yield h
    context.close()
    assert not h.foreign_requests(), f"requests left {HOST}: {h.foreign_requests()}"


@pytest.mark.slow
def test_cpu_engine_greedy_ids_match_reference_without_webgpu(cpu_harness: Harness, smollm2: str, site: Site) -> None:
    harness = cpu_harness
    assert harness.page.evaluate("async () => !navigator.gpu || !(await navigator.gpu.requestAdapter())"), \
        "this Chromium has a WebGPU adapter: the test would not show the CPU engine alone"
    ref = reference_engine(site.models[smollm2])
    info = harness.call("loadEngine", smollm2, {"context": 512, "engine": "cpu"})
    assert info["model"] == ref.name and info["engine"] == "cpu" and info["adapter"] is None, info
    assert any(u.endswith("/app/engine/cpu/cpu_engine.wasm") for u in harness.requests), harness.requests
    lengths = []
    for messages in CHATS:
        prompt = ref.prompt_ids(messages)
        assert harness.call("promptIds", messages) == prompt, "template + tokenizer differ from Python's"
        expected = list(ref.generate_ids(prompt, STEPS, _greedy()))
        got = harness.call("generateIds", prompt, STEPS)
        assert got == expected, f"{messages[-1]['content'][:40]!r}: {ref.decode(got)!r} vs {ref.decode(expected)!r}"
        lengths.append(len(expected))
    # the pump and triage answers are long; "Paris." ends at EOS early, and must end there on both sides alike
    assert lengths[:2] == [STEPS, STEPS], lengths
