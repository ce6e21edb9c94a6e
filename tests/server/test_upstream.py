"""--upstream: a proxy to another OpenAI-compatible server, here a second instance of ours on loopback (fake engine).

The real-model proxy runs in test_openai_client.py; these cover validation parity, pass-through and failures.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from app.server.app import create_app
from app.server.upstream import UpstreamBackend, base_url

from .aio import run_async
from .conftest import FRANCE, free_port, live_server, make_settings
from .fake_engine import FakeEngine
from .test_validation import assert_openai_error

CHAT: dict[str, Any] = {"model": "fake-model", "messages": FRANCE}


def _proxy_app(upstream: str, **overrides: Any) -> Any:
    settings = make_settings(upstream=upstream, **overrides)
    return create_app(settings, UpstreamBackend(settings))


@pytest.fixture
def proxied(serve_fake: Callable[..., str]) -> Iterator[tuple[TestClient, FakeEngine]]:
    engine = FakeEngine()
    with TestClient(_proxy_app(serve_fake(engine, queue_size=1))) as client:
        yield client, engine


def test_base_url() -> None:
    assert base_url("http://h:8080") == base_url("http://h:8080/") == base_url("http://h:8080/v1/") == \
        "http://h:8080/v1"


def test_answers_pass_through(proxied: tuple[TestClient, FakeEngine]) -> None:
    client, _ = proxied
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["fake-model"]
    done = client.post("/v1/chat/completions", json=CHAT).json()
    assert done["choices"][0]["message"]["content"] == "The capital of France is Paris."
    with client.stream("POST", "/v1/chat/completions",
                       json={**CHAT, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [e for e in r.read().decode().split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2].removeprefix("data: "))["usage"]["completion_tokens"] == 6
    assert client.get("/healthz").json()["backend"] == "upstream"


def test_validation_happens_before_the_upstream(proxied: tuple[TestClient, FakeEngine]) -> None:
    client, engine = proxied
    assert_openai_error(client.post("/v1/chat/completions", json={**CHAT, "n": 3}), 400, "n")
    assert_openai_error(client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 10**6}), 400, "max_tokens")
    assert_openai_error(client.post("/v1/chat/completions", content=b"{",
                                    headers={"content-type": "application/json"}), 400, None, "invalid_json")
    assert_openai_error(client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}), 404, "model",
                        "model_not_found")
    assert engine.runs == []


def test_upstream_errors_about_the_request_pass_through(proxied: tuple[TestClient, FakeEngine]) -> None:
    client, _ = proxied
    long = {**CHAT, "messages": [{"role": "user", "content": "word " * 100}]}  # over the fake's 64-token context
    assert_openai_error(client.post("/v1/chat/completions", json=long), 400, "messages", "context_length_exceeded")


def test_server_cap_applies_upstream(serve_fake: Callable[..., str]) -> None:
    engine = FakeEngine(endless=True)
    with TestClient(_proxy_app(serve_fake(engine), max_tokens=4)) as client:
        done = client.post("/v1/chat/completions", json=CHAT).json()
    assert done["usage"]["completion_tokens"] == 4 and engine.runs == [4]


def test_unreachable_upstream_is_a_502() -> None:
    with TestClient(_proxy_app(f"http://127.0.0.1:{free_port()}/v1")) as client:
        for r in (client.post("/v1/chat/completions", json=CHAT), client.get("/v1/models")):
            assert_openai_error(r, 502, None, "upstream_unreachable")
        assert client.get("/healthz").status_code == 200


def test_upstream_token(serve_fake: Callable[..., str]) -> None:
    upstream = serve_fake(token="up-secret")
    with TestClient(_proxy_app(upstream, upstream_token="up-secret", token="front")) as client:
        ok = client.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer front"})
        assert ok.status_code == 200
    with TestClient(_proxy_app(upstream, upstream_token="wrong")) as client:
        assert_openai_error(client.post("/v1/chat/completions", json=CHAT), 502, None, "upstream_error")


def test_upstream_queue_full_passes_through_429(serve_fake: Callable[..., str]) -> None:
    engine = FakeEngine(delay=0.02, endless=True)
    upstream = serve_fake(engine, queue_size=0)
    with live_server(_proxy_app(upstream, upstream_parallel=4)) as proxy:
        async def scenario() -> None:
            async with httpx.AsyncClient(timeout=10) as a, httpx.AsyncClient(timeout=10) as b:
                async with a.stream("POST", f"{proxy}/v1/chat/completions",
                                    json={**CHAT, "stream": True, "max_tokens": 500}) as first:
                    assert first.status_code == 200
                    r = await b.post(f"{proxy}/v1/chat/completions", json={**CHAT, "max_tokens": 2})
                    assert_openai_error(r, 429, None, "queue_full")
                    assert int(r.headers["retry-after"]) >= 1
                # hanging up on the proxy hangs up on the upstream: its slot frees and the engine stops
                start = time.monotonic()
                while (await b.get(f"{upstream}/healthz")).json()["busy"]:
                    assert time.monotonic() - start < 2
                    await asyncio.sleep(0.01)
                assert (await b.post(f"{proxy}/v1/chat/completions", json={**CHAT, "max_tokens": 2})).status_code \
                    == 200
            assert engine.runs[0] < 100

        run_async(scenario())
