"""A busy engine is freed and a small request is not starved (issue 15 items 4 and 5), on the real default model.

A client that hangs up during a long prefill frees the engine (item 4).

The audit saw the slot freed at once (/healthz idle) while the prefill ran on: the next small request waited 53.7 s
instead of 1.2 s. The engine now asks the job's cancel flag between prefill chunks (PREFILL_CHUNK tokens). Speed
figures belong to scripts/bench_serve.py (--scenario disconnect); here the check is which forward passes ran, plus a
generous bound on the next request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient
from threadpoolctl import threadpool_info

from app.server.app import create_app
from app.server.local import SMALL_PROMPT, LocalBackend
from model_prep.reference import load
from model_prep.reference.engine import PREFILL_CHUNK

from .aio import run_async
from .conftest import fake_app, live_server, make_settings
from .fake_engine import FakeEngine

LONG = [{"role": "user", "content": "The mud pump pressure is drifting high since the night shift. " * 160}]
SMALL = [{"role": "user", "content": "Hi"}]


def test_hanging_up_during_prefill_frees_the_engine(smollm2_package: Path) -> None:
    engine = load(smollm2_package, context=4096)
    n_long = len(engine.prompt_ids(LONG))
    assert n_long > 10 * PREFILL_CHUNK
    passes: list[tuple[int, int]] = []  # (position, tokens) of each forward pass
    run = engine.logits

    def logits(ids: Any, pos: int = 0, all_logits: bool = False) -> Any:
        passes.append((pos, len(ids)))
        return run(ids, pos, all_logits)

    engine.logits = logits  # type: ignore[method-assign]
    settings = make_settings(max_tokens=8)
    with live_server(create_app(settings, LocalBackend(engine, settings))) as url:
        async def scenario() -> float:
            async with httpx.AsyncClient(timeout=120) as http:
                body = {"model": engine.name, "messages": LONG, "stream": True, "max_tokens": 8}
                async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
                    assert r.status_code == 200
                    while not passes:  # the prefill has started
                        await asyncio.sleep(0.01)
                # hung up: the slot is free at once
                while (await http.get(f"{url}/healthz")).json()["busy"]:
                    await asyncio.sleep(0.01)
                start = time.monotonic()
                small = await http.post(f"{url}/v1/chat/completions",
                                        json={"model": engine.name, "messages": SMALL, "max_tokens": 4})
                assert small.status_code == 200, small.text
                return time.monotonic() - start

        waited = run_async(scenario())
    assert n_long not in {pos + n for pos, n in passes}, "the abandoned prompt was prefilled to its end"
    # the whole long prefill takes tens of seconds on these machines; one chunk and a small answer take a few
    assert waited < 30, f"the next request waited {waited:.1f} s"


def test_oversized_prompts_are_refused_before_tokenizing(smollm2_package: Path) -> None:
    """Item 5: 16 concurrent ~1 MB prompts (all 400 in the end) cost 12 s of CPU in templating and tokenizing before
    the queue, and a small request waited 18.5 s instead of 1.6 s. No token is longer than the vocabulary's longest,
    so a prompt of more characters than context x that cannot fit and is refused without being tokenized."""
    engine = load(smollm2_package, context=4096)
    tokenized: list[int] = []  # characters of each prompt tokenized
    count = engine.prompt_ids

    def prompt_ids(messages: list[dict[str, str]], tools: Any = None) -> list[int]:
        tokenized.append(sum(len(m["content"]) for m in messages))
        return count(messages, tools)

    engine.prompt_ids = prompt_ids  # type: ignore[method-assign]
    settings = make_settings(max_tokens=8, queue_size=16)
    big = {"model": engine.name, "messages": [{"role": "user", "content": "pressure " * 110_000}], "max_tokens": 4}
    small = {"model": engine.name, "messages": SMALL, "max_tokens": 4}
    with live_server(create_app(settings, LocalBackend(engine, settings))) as url:
        async def scenario() -> tuple[list[httpx.Response], httpx.Response, float]:
            async with httpx.AsyncClient(timeout=120) as http:
                bigs = [asyncio.create_task(http.post(f"{url}/v1/chat/completions", json=big)) for _ in range(16)]
                await asyncio.sleep(0.2)
                start = time.monotonic()
                answer = await http.post(f"{url}/v1/chat/completions", json=small)
                waited = time.monotonic() - start
                return await asyncio.gather(*bigs), answer, waited

        refused, answer, waited = run_async(scenario())
    assert [r.status_code for r in refused] == [400] * 16
    assert {r.json()["error"]["code"] for r in refused} == {"context_length_exceeded"}
    assert answer.status_code == 200, answer.text
    assert max(tokenized) < 1000, "an oversized prompt was tokenized"
    assert waited < 20, f"the small request waited {waited:.1f} s"


class _SlowPrompts(FakeEngine):
    """Tokenizing a long prompt takes a while; records how many long ones were tokenized at once."""

    def __init__(self) -> None:
        super().__init__(context=1 << 20)
        self.long_at_once = self.most_long_at_once = 0
        self._count_lock = threading.Lock()

    def prompt_ids(self, messages: list[dict[str, str]], tools: Any = None) -> list[int]:
        if sum(len(m["content"]) for m in messages) <= SMALL_PROMPT or \
                threading.current_thread().name.startswith("engine-"):  # the fake's stream counts its prompt too
            return super().prompt_ids(messages, tools)
        with self._count_lock:
            self.long_at_once += 1
            self.most_long_at_once = max(self.most_long_at_once, self.long_at_once)
        try:
            time.sleep(0.3)
            return super().prompt_ids(messages, tools)
        finally:
            with self._count_lock:
                self.long_at_once -= 1


def test_long_prompts_are_tokenized_one_at_a_time_and_counted(serve_fake: Any) -> None:
    engine = _SlowPrompts()
    url = serve_fake(engine, queue_size=4)
    long = {"model": engine.name, "messages": [{"role": "user", "content": "word " * 4000}], "max_tokens": 2}
    small = {"model": engine.name, "messages": SMALL, "max_tokens": 2}

    async def scenario() -> tuple[list[int], float, int]:
        async with httpx.AsyncClient(timeout=30) as http:
            longs = [asyncio.create_task(http.post(f"{url}/v1/chat/completions", json=long)) for _ in range(4)]
            await asyncio.sleep(0.1)
            busy = (await http.get(f"{url}/healthz")).json()["busy"]  # preparing requests count
            start = time.monotonic()
            assert (await http.post(f"{url}/v1/chat/completions", json=small)).status_code == 200
            waited = time.monotonic() - start
            return [r.status_code for r in await asyncio.gather(*longs)], waited, busy

    statuses, waited, busy = run_async(scenario())
    assert statuses == [200] * 4 and engine.most_long_at_once == 1 and busy >= 3
    assert waited < 0.9  # a small prompt does not wait behind the long ones' tokenizing (4 x 0.3 s)


class _BlasProbe(FakeEngine):
    """Records the BLAS thread counts in force while it generates."""

    def __init__(self) -> None:
        super().__init__()
        self.blas: list[int] = []

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        self.blas = sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
        yield from super().stream(*args, **kwargs)


def _blas_now() -> list[int]:
    return sorted({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})


def test_the_engine_runs_with_the_blas_threads_setting() -> None:
    """Item 6: numpy's default (a thread per core) made decode 2.4-2.7x slower on a shared 2-core machine; the
    engine now runs with --blas-threads (default 1), and the process's own setting is put back after."""
    before = _blas_now()
    assert before, "numpy's BLAS is not loaded"
    for setting, expected in ((None, [1]), (2, [2]), (0, before)):
        engine = _BlasProbe()
        app = fake_app(engine) if setting is None else fake_app(engine, blas_threads=setting)
        with TestClient(app) as client:
            assert client.post("/v1/chat/completions", json={"model": engine.name, "messages": SMALL}).status_code \
                == 200
        assert engine.blas == expected, setting
        assert _blas_now() == before
