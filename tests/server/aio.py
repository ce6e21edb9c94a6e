"""Run a coroutine to completion from a sync test, whatever loop the main thread holds.

Playwright's sync API (the session-wide fixture in tests/conftest.py) keeps an asyncio loop running in the main
thread once any browser test has started, and ``asyncio.run`` refuses to nest in it. A fresh thread has no loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on a thread of its own; returns its result or raises what it raised."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
