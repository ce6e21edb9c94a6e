"""The engine in its Web Worker, driven through app/engine/client.js as the app drives it.

Streaming chunks arrive while generation runs, the page's timer and animation frames keep ticking, an AbortSignal
stops generation and the worker serves the next request, the text equals the numpy reference engine's, and no
request (page or worker) leaves 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import HOST, Harness, Site, reference_engine

QUESTIONS = [
    "The pump bearing runs hot at 78 degrees; what should I check?",
    "Patient: fever 39.4 C, heart rate 128 bpm. What now?",
    "Generator 2 tripped on overcurrent. Reset?",
    "What is the capital of France?",
]
LONG_ENOUGH = 24  # tokens of greedy answer the streaming test needs before EOS


def _long_answer(ref: Any) -> tuple[list[dict[str, str]], str]:
    """A question whose greedy answer by this (random) model runs LONG_ENOUGH tokens before EOS, and that text."""
    for question in QUESTIONS:
        messages = [{"role": "user", "content": question}]
        done = ref.generate(messages, max_tokens=LONG_ENOUGH)
        if done.finish_reason == "length":
            return messages, done.text
    pytest.fail("no question gives the tiny model a long enough answer: add one to QUESTIONS")


@pytest.mark.slow
def test_worker_streams_while_the_page_stays_responsive(harness: Harness, tiny: Any, site: Site) -> None:
    name = tiny("llama", "q4")
    ref = reference_engine(site.models[name])
    messages, expected = _long_answer(ref)
    started = harness.call("startWorker", name)
    assert started["info"]["model"] == ref.name
    stages = [p["stage"] for p in started["progress"]]
    assert stages[0] == "manifest" and stages[-1] == "ready" and "weights" in stages

    run = harness.call("workerChat", {"messages": messages, "stream": True, "max_tokens": LONG_ENOUGH,
                                      "stream_options": {"include_usage": True}})
    assert run["error"] is None, harness.log()
    chunks, times = run["chunks"], run["times"]
    content = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert "".join(content) == expected
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == LONG_ENOUGH
    # chunks arrive over the generation as tokens are made, not all at its end
    assert len(content) >= LONG_ENOUGH // 2
    arrivals = times[1:-2]
    decode_span = arrivals[-1] - arrivals[0]
    assert decode_span > 0 and len({round(t) for t in arrivals}) >= len(arrivals) // 3, arrivals
    median = sorted(arrivals)[len(arrivals) // 2]
    assert median < arrivals[-1] - 0.2 * decode_span, f"content came in a burst at the end: {arrivals}"
    # the page kept running: the 10 ms timer fired throughout, and animation frames were drawn
    duration = run["end"] - run["start"]
    assert run["ticks"] >= 0.3 * duration / 10, f"{run['ticks']} timer ticks in {duration:.0f} ms"
    assert run["maxTickGapMs"] < 500, f"the main thread stalled for {run['maxTickGapMs']:.0f} ms"
    assert run["frames"] > 0


@pytest.mark.slow
def test_worker_abort_stops_generation_and_the_next_request_runs(harness: Harness, tiny: Any, site: Site) -> None:
    name = tiny("llama", "q4")
    ref = reference_engine(site.models[name])
    messages, expected = _long_answer(ref)
    harness.call("startWorker", name)
    run = harness.call("workerChat", {"messages": messages, "stream": True, "max_tokens": 200}, {"abortAfter": 3})
    assert run["error"] is not None and run["error"]["name"] == "AbortError", run["error"]
    content = [c for c in run["chunks"] if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert 3 <= len(content) < 10, f"{len(content)} content chunks after aborting at 3"
    assert not any(c["choices"][0]["finish_reason"] for c in run["chunks"] if c["choices"])

    # the worker is free again, its KV cache still right: the same question gives the reference's answer
    after = harness.call("workerChat", {"messages": messages, "max_tokens": LONG_ENOUGH})
    assert after["error"] is None, after["error"]
    assert after["completion"]["choices"][0]["message"]["content"] == expected
    assert after["completion"]["choices"][0]["finish_reason"] == "length"

    # a page that stops reading a stream frees the worker too
    broke = harness.call("workerChat", {"messages": messages, "stream": True, "max_tokens": 200}, {"breakAfter": 2})
    assert broke["error"] is None
    again = harness.call("workerChat", {"messages": messages, "max_tokens": LONG_ENOUGH})
    assert again["completion"]["choices"][0]["message"]["content"] == expected

    # a signal aborted before the request: it rejects at once, nothing streams
    early = harness.call("workerChat", {"messages": messages, "stream": True}, {"abortBefore": True})
    assert early["error"]["name"] == "AbortError" and early["chunks"] == []

    # a request that does not stream, aborted while it runs, rejects with an AbortError
    mid = harness.call("workerChat", {"messages": messages, "max_tokens": 200}, {"abortAfterMs": 50})
    assert mid["error"] is not None and mid["error"]["name"] == "AbortError", mid



@pytest.mark.slow
def test_worker_follow_up_turn_matches_reference(harness: Harness, tiny: Any, site: Site) -> None:
    """The second turn extends the first: the worker runs only its new tokens and must still answer as a fresh
    reference engine does."""
    name = tiny("qwen2", "f32")
    harness.call("startWorker", name)
    turn = [{"role": "user", "content": QUESTIONS[0]}]
    for follow_up in QUESTIONS[1:3]:
        got = harness.call("workerChat", {"messages": turn, "max_tokens": 12})["completion"]
        fresh = reference_engine(site.models[name]).generate(turn, max_tokens=12)
        assert got["choices"][0]["message"]["content"] == fresh.text
        assert got["usage"]["prompt_tokens"] == fresh.usage.prompt_tokens
        turn = [*turn, {"role": "assistant", "content": fresh.text}, {"role": "user", "content": follow_up}]

@pytest.mark.slow
def test_no_request_leaves_localhost(harness: Harness, tiny: Any, site: Site) -> None:
    name = tiny("llama", "q4")
    harness.call("startWorker", name)
    harness.call("workerChat", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    paths = [u.removeprefix(site.url) for u in harness.requests]
    # the recording sees the worker's requests too: the worker script, the shards, the shaders
    assert "/app/engine/worker.js" in paths
    assert any(p.startswith(f"/models/{name}/weights-") for p in paths)
    assert any(p.startswith("/webgpu_shaders/") for p in paths)
    assert all(u.startswith(f"http://{HOST}:") for u in harness.requests), harness.foreign_requests()
    assert not harness.foreign_requests()


def test_client_reports_load_errors(harness: Harness, site: Site) -> None:
    result = harness.page.evaluate("""async () => {
        const { EngineClient } = await import('/app/engine/client.js');
        try { await EngineClient.create({ baseUrl: '/models/missing/', shaderBaseUrl: '/webgpu_shaders/' }); }
        catch (e) { return { name: e.name, message: e.message }; }
        return null;
    }""")
    assert result is not None and result["name"] == "FetchError", result
    assert "manifest.json" in result["message"]


def test_without_webgpu_the_client_says_so(browser_without_webgpu: Any, site: Site, tiny: Any) -> None:
    name = tiny("llama", "q4")
    page = browser_without_webgpu.new_page()
    page.goto(f"{site.url}/harness/harness.html")
    page.wait_for_function("window.harness !== undefined")
    result = page.evaluate("""async (name) => {
        try { await window.harness.startWorker(name); } catch (e) { return { name: e.name, message: e.message }; }
        return null;
    }""", name)
    page.close()
    assert result is not None and result["name"] == "WebGPUUnavailableError", result
    assert "fallback server" in result["message"]
