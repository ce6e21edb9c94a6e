"""The bounded queue on a live server: 429 + Retry-After when full, disconnects free their slot, timeouts end waits.

The fake engine talks for as long as asked (endless=True), one token per ``delay`` seconds, and records how many
tokens each generation produced and how many ran at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from .aio import run_async
from .conftest import FRANCE
from .fake_engine import FakeEngine
from .test_validation import assert_openai_error

CHAT: dict[str, Any] = {"model": "fake-model", "messages": FRANCE, "max_tokens": 3}
LONG = {**CHAT, "max_tokens": 500}  # 500 tokens at 20 ms: 10 s unless stopped


async def _health(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    return dict((await client.get(f"{url}/healthz")).json())


async def _until(predicate: Callable[[], Any], timeout: float = 3.0) -> float:
    """Seconds until ``predicate()`` (a coroutine function's result) is true; fails after ``timeout``."""
    start = time.monotonic()
    while not await predicate():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def test_full_queue_answers_429_at_once(serve_fake: Callable[..., str]) -> None:
    engine = FakeEngine(delay=0.02, endless=True)
    url = serve_fake(engine, queue_size=1)

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream("POST", f"{url}/v1/chat/completions", json={**LONG, "stream": True}) as a:
                assert a.status_code == 200
                waiting = asyncio.create_task(client.post(f"{url}/v1/chat/completions", json=CHAT))
                await _until(lambda: _busy_is(client, url, 2))
                start = time.monotonic()
                r = await client.post(f"{url}/v1/chat/completions", json=CHAT)
                assert time.monotonic() - start < 1.0  # answered, not held
                error = assert_openai_error(r, 429, None, "queue_full")
                assert int(r.headers["retry-after"]) >= 1 and "retry" in error["message"]
            # A hung up: the waiting request gets the model and finishes
            assert (await waiting).status_code == 200
        assert engine.most_at_once == 1

    run_async(scenario())


async def _busy_is(client: httpx.AsyncClient, url: str, n: int) -> bool:
    return (await _health(client, url))["busy"] == n


def test_disconnect_mid_stream_frees_the_slot(serve_fake: Callable[..., str]) -> None:
    engine = FakeEngine(delay=0.02, endless=True)
    url = serve_fake(engine, queue_size=0)  # one request at a time, none waiting

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream("POST", f"{url}/v1/chat/completions", json={**LONG, "stream": True}) as a:
                lines = a.aiter_lines()
                for _ in range(3):
                    await anext(lines)
            # the client hung up after three events; the slot must be free at once and the engine stop
            freed = await _until(lambda: _busy_is(client, url, 0), timeout=1.0)
            start = time.monotonic()
            b = await client.post(f"{url}/v1/chat/completions", json={**CHAT, "max_tokens": 3})
            assert b.status_code == 200, b.text
            assert time.monotonic() - start < 1.0
            assert freed < 0.5
        assert engine.runs[0] < 50  # stopped between tokens, not after all 500
        assert engine.most_at_once == 1

    run_async(scenario())


def test_disconnect_while_waiting_for_a_whole_answer(serve_fake: Callable[..., str]) -> None:
    engine = FakeEngine(delay=0.02, endless=True)
    url = serve_fake(engine, queue_size=0)

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            task = asyncio.create_task(client.post(f"{url}/v1/chat/completions", json=LONG))
            await _until(lambda: _busy_is(client, url, 1))
            await asyncio.sleep(0.1)
            task.cancel()  # closes the connection mid-request
            await _until(lambda: _busy_is(client, url, 0), timeout=1.0)
            assert (await client.post(f"{url}/v1/chat/completions", json=CHAT)).status_code == 200
        assert engine.runs[0] < 50

    run_async(scenario())


def test_disconnect_while_queued_leaves_the_queue(serve_fake: Callable[..., str]) -> None:
    engine = FakeEngine(delay=0.02, endless=True)
    url = serve_fake(engine, queue_size=1)

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream("POST", f"{url}/v1/chat/completions", json={**LONG, "stream": True}):
                queued = asyncio.create_task(client.post(f"{url}/v1/chat/completions", json=CHAT))
                await _until(lambda: _busy_is(client, url, 2))
                queued.cancel()
                await _until(lambda: _busy_is(client, url, 1), timeout=1.0)
            await _until(lambda: _busy_is(client, url, 0), timeout=1.0)
        assert len(engine.runs) == 1  # the one that left the queue never ran

    run_async(scenario())


def test_queue_wait_is_bounded(serve_fake: Callable[..., str]) -> None:
    url = serve_fake(FakeEngine(delay=0.02, endless=True), queue_size=1, queue_timeout=0.3)

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            async with client.stream("POST", f"{url}/v1/chat/completions", json={**LONG, "stream": True}):
                start = time.monotonic()
                r = await client.post(f"{url}/v1/chat/completions", json=CHAT)
                assert 0.25 < time.monotonic() - start < 2.0
                assert_openai_error(r, 429, None, "queue_timeout")
                assert int(r.headers["retry-after"]) >= 1

    run_async(scenario())


def test_generation_timeout_ends_the_answer(serve_fake: Callable[..., str]) -> None:
    url = serve_fake(FakeEngine(delay=0.02, endless=True), generation_timeout=0.2)
    start = time.monotonic()
    r = httpx.post(f"{url}/v1/chat/completions", json=LONG, timeout=10)
    assert time.monotonic() - start < 2.0
    done = r.json()
    assert done["choices"][0]["finish_reason"] == "length"
    assert 0 < done["usage"]["completion_tokens"] < 100


def test_concurrent_requests_run_one_at_a_time(serve_fake: Callable[..., str]) -> None:
    engine = FakeEngine(delay=0.005)
    url = serve_fake(engine, queue_size=7)

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(timeout=20) as client:
            rs = await asyncio.gather(*[client.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": s})
                                        for s in (True, False) * 4])
            return [r.status_code for r in rs]

    assert run_async(scenario()) == [200] * 8
    assert engine.most_at_once == 1 and len(engine.runs) == 8
