"""The one thread that runs a model, and the jobs it runs: chunks flow back to the event loop through a queue.

The numpy engine keeps a KV cache and is not thread-safe, so each model gets a single worker thread and jobs run
one after another. A job checks its cancel flag and its deadline between tokens, and the engine checks the flag
between prefill chunks, so a client that hangs up during a long prompt frees the engine within one chunk; a
cancelled job that has not started yet returns at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any, Protocol

from threadpoolctl import ThreadpoolController

from model_prep.reference import Chunk, Decoding, Usage
from model_prep.reference.engine import Cancelled

from .parse import Sampling


class ChatEngine(Protocol):
    """What the server needs of an engine; model_prep.reference.Engine is one."""

    name: str

    @property
    def context(self) -> int: ...

    def prompt_ids(self, messages: list[dict[str, str]], tools: list[dict[str, Any]] | None = None) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def grammars(self) -> Any: ...  # reference.grammar.Grammars: .compile(spec) raises InputError if it cannot

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None,
               temperature: float | None = None, top_p: float | None = None, seed: int | None = None,
               stop: Sequence[str] | None = None, decoding: Decoding | None = None,
               tools: list[dict[str, Any]] | None = None,
               cancelled: Callable[[], bool] | None = None) -> Iterator[Chunk]: ...


_END = None  # queued after the last chunk


class Job:
    """One generation. ``run`` executes on the worker thread; ``chunks`` is read on the event loop."""

    def __init__(self, engine: ChatEngine, messages: list[dict[str, str]], sampling: Sampling, prompt_tokens: int,
                 timeout: float, tools: list[dict[str, Any]] | None = None):
        self._engine = engine
        self._messages = messages
        self._tools = tools
        self._sampling = sampling
        self._prompt_tokens = prompt_tokens
        self._timeout = timeout
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Chunk | BaseException | None] = asyncio.Queue()
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()

    async def chunks(self) -> AsyncIterator[Chunk]:
        """Every chunk up to and including the one with ``finish_reason`` (or none, if cancelled)."""
        while (item := await self._queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def run(self) -> None:
        s = self._sampling
        stream = self._engine.stream(self._messages, s.max_tokens, s.temperature, s.top_p, s.seed, s.stop,
                                     decoding=s.decoding, tools=self._tools, cancelled=self._cancelled.is_set)
        produced = 0
        try:
            if self._cancelled.is_set():
                return
            deadline = time.monotonic() + self._timeout
            for chunk in stream:
                produced += len(chunk.token_ids)
                self._put(chunk)
                if chunk.finish_reason or self._cancelled.is_set():
                    break
                if time.monotonic() > deadline:  # out of time: end the answer as if it had hit max_tokens
                    self._put(Chunk("", [], "length", Usage(self._prompt_tokens, produced)))
                    break
        except Cancelled:
            pass  # the client is gone: nobody reads the answer
        except Exception as e:  # handed to the reader, which reports it
            self._put(e)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            self._put(_END)

    def _put(self, item: Chunk | BaseException | None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is closed (server shutting down): nobody reads any more
            self._cancelled.set()


class Worker:
    """A single thread per model; jobs queue here in submission order (the Slots in front bound how many).

    The thread starts with the first job and ends at ``shutdown``; a later job starts a new one, so an app whose
    lifespan ends and starts again (test clients do that) keeps working. While a job runs, numpy's BLAS uses
    ``blas_threads`` threads (0: its own default, one per core; the limit is process-wide, and put back after).
    """

    def __init__(self, name: str, blas_threads: int = 0):
        self._name = name
        self._blas_threads = blas_threads
        self._executor: ThreadPoolExecutor | None = None
        self._jobs: set[Job] = set()

    def _run(self, job: Job) -> None:
        with blas_threads(self._blas_threads):
            job.run()

    def start(self, job: Job, on_done: Callable[[], None]) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"engine-{self._name}"[:40])
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._run, job)
        self._jobs.add(job)

        def done(_: object) -> None:
            self._jobs.discard(job)
            on_done()

        future.add_done_callback(done)

    def shutdown(self) -> None:
        """Stop the running job between tokens, drop queued ones, and wait for the thread to end."""
        executor, self._executor = self._executor, None
        for job in list(self._jobs):
            job.cancel()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # finds the BLAS libraries loaded (numpy's OpenBLAS) once


def blas_threads(n: int) -> AbstractContextManager[Any]:
    """numpy's BLAS limited to ``n`` threads inside the block (no limit for 0). One request at a time gains little
    from more: on a shared 2-core machine numpy's default of one thread per core made decode 2.4-2.7x slower."""
    return _blas().limit(limits=n, user_api="blas") if n else nullcontext()
