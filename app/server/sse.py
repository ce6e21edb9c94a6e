"""Server-sent events that stop their producer the moment the client hangs up, on any ASGI server.

Starlette's StreamingResponse only watches for disconnects under ASGI < 2.4 and never closes its iterator; here a
watcher task cancels the stream on ``http.disconnect``, a failed send counts as a disconnect too, and ``on_close``
always runs, so a generation slot is freed whichever way the stream ends.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .disconnect import wait_for_disconnect

DONE = b"data: [DONE]\n\n"


def event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode()


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[bytes, None], on_close: Callable[[], Awaitable[None]]):
        # x-accel-buffering: tells reverse proxies (nginx) not to hold the stream back
        # (no Response.__init__: it would set a body and so a content-length)
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})
        self.events = events
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg, aclosing(self.events) as events:

                async def watch() -> None:
                    await wait_for_disconnect(receive)
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
                async for data in events:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tg.cancel_scope.cancel()
        except OSError:
            pass  # servers on ASGI 2.4 raise on sending to a closed connection: the client is gone
        finally:
            with anyio.CancelScope(shield=True):
                await self.on_close()
