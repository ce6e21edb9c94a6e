"""A bounded queue in front of one model: ``running`` requests at once, ``waiting`` more in line, 429 past that.

Admission is decided at once (a full queue answers 429 with Retry-After instead of holding the connection), waiting
is first come first served and bounded in time, and a freed slot is handed straight to the next in line so that no
newcomer overtakes it. All methods run on the event loop thread (the engine's worker thread calls ``release``
through ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from .errors import APIError

_SMOOTHING = 0.3  # weight of the newest hold time in the running average behind Retry-After


class Permit:
    """One admitted request's hold on a slot; ``release`` may be called any number of times."""

    def __init__(self, slots: Slots):
        self._slots = slots
        self._since = time.monotonic()
        self.released = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._slots._release(time.monotonic() - self._since)


class Slots:
    def __init__(self, running: int, waiting: int, wait_timeout: float):
        self.running_limit = running
        self.waiting_limit = waiting
        self.wait_timeout = wait_timeout
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._mean_hold = 1.0  # seconds a request holds a slot, smoothed; a first guess until one finishes

    @property
    def busy(self) -> int:
        return self.running + len(self._waiters)

    @property
    def capacity(self) -> int:
        return self.running_limit + self.waiting_limit

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the line ahead, times the mean hold, over the parallel slots."""
        ahead = len(self._waiters) + 1
        return max(1, min(3600, math.ceil(self._mean_hold * ahead / self.running_limit)))

    async def acquire(self) -> Permit:
        if self.busy >= self.capacity:
            raise self._busy("the server is busy: the queue for this model is full", "queue_full")
        if self.running < self.running_limit and not self._waiters:
            self.running += 1
            return Permit(self)
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            async with asyncio.timeout(self.wait_timeout):
                await turn
        except TimeoutError:
            self._leave(turn)
            raise self._busy(f"the server is busy: waited {self.wait_timeout:g} s in the queue", "queue_timeout") \
                from None
        except BaseException:  # cancelled: the client went away while waiting
            self._leave(turn)
            raise
        return Permit(self)

    def _leave(self, turn: asyncio.Future[None]) -> None:
        if turn.done() and not turn.cancelled():
            self._handover()  # the slot reached us just as we gave up: pass it on
        else:
            turn.cancel()
            self._waiters.remove(turn)

    def _release(self, held: float) -> None:
        self._mean_hold += _SMOOTHING * (held - self._mean_hold)
        self._handover()

    def _handover(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot moves to the next in line: ``running`` stays the same
                return
        self.running -= 1

    def _busy(self, message: str, code: str) -> APIError:
        retry = self.retry_after()
        return APIError(429, f"{message}; retry in {retry} s", code=code, headers={"Retry-After": str(retry)})
