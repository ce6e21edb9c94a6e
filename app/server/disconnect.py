"""Noticing a client that hangs up while we wait for a slot or for a whole (non-streamed) answer.

Once the request body is read, the next ASGI ``receive`` only returns when the client disconnects, so waiting on it
beside the real work tells us when to give up. (Streams watch for the same message in ``sse.EventStream``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.types import Receive

from .errors import ClientGone

T = TypeVar("T")


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise ClientGone."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # let it clean up (leave the queue) before we go on
    if task.cancelled():
        raise ClientGone()
    return task.result()
