"""The queue in front of a model, on its own: limits, first come first served, handover, leaving, timeouts."""

from __future__ import annotations

import asyncio

import pytest

from app.server.errors import APIError
from app.server.slots import Slots

from .aio import run_async


def test_admits_up_to_running_plus_waiting_then_429() -> None:
    async def scenario() -> None:
        slots = Slots(running=1, waiting=2, wait_timeout=5)
        first = await slots.acquire()
        waiters = [asyncio.create_task(slots.acquire()) for _ in range(2)]
        await asyncio.sleep(0)
        assert (slots.busy, slots.capacity) == (3, 3)
        with pytest.raises(APIError) as e:
            await slots.acquire()
        assert e.value.status == 429 and e.value.code == "queue_full"
        assert int(e.value.headers["Retry-After"]) >= 1
        first.release()
        first.release()  # twice is harmless
        second = await waiters[0]
        assert not waiters[1].done() and slots.busy == 2
        second.release()
        (await waiters[1]).release()
        assert slots.busy == 0 and slots.running == 0

    run_async(scenario())


def test_first_come_first_served_and_no_overtaking() -> None:
    async def scenario() -> list[int]:
        slots = Slots(running=1, waiting=10, wait_timeout=5)
        order: list[int] = []
        holder = await slots.acquire()

        async def user(i: int) -> None:
            permit = await slots.acquire()
            order.append(i)
            await asyncio.sleep(0.001)
            permit.release()

        tasks = [asyncio.create_task(user(i)) for i in range(5)]
        await asyncio.sleep(0)
        holder.release()
        tasks.append(asyncio.create_task(user(99)))  # arrives as a slot frees: must queue behind the five
        await asyncio.gather(*tasks)
        return order

    assert run_async(scenario()) == [0, 1, 2, 3, 4, 99]


def test_a_waiter_that_leaves_frees_its_place() -> None:
    async def scenario() -> None:
        slots = Slots(running=1, waiting=1, wait_timeout=5)
        holder = await slots.acquire()
        leaving = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.gather(leaving, return_exceptions=True)
        assert slots.busy == 1
        nxt = asyncio.create_task(slots.acquire())
        await asyncio.sleep(0)
        holder.release()
        (await nxt).release()
        assert slots.busy == 0

    run_async(scenario())


def test_wait_times_out_with_429() -> None:
    async def scenario() -> None:
        slots = Slots(running=1, waiting=1, wait_timeout=0.05)
        holder = await slots.acquire()
        with pytest.raises(APIError) as e:
            await slots.acquire()
        assert e.value.status == 429 and e.value.code == "queue_timeout"
        assert slots.busy == 1
        holder.release()
        assert slots.busy == 0

    run_async(scenario())


def test_parallel_slots_and_retry_after_estimate() -> None:
    async def scenario() -> None:
        slots = Slots(running=2, waiting=0, wait_timeout=1)
        a, b = await slots.acquire(), await slots.acquire()
        with pytest.raises(APIError):
            await slots.acquire()
        a.release()
        b.release()
        assert 1 <= slots.retry_after() <= 3600

    run_async(scenario())
