"""A stand-in for llama.cpp's Python server (``python -m llama_cpp.server``, llama-cpp-python 0.3) as an upstream.

Building llama-cpp-python does not fit in CI (and its sdist build crashed with SIGILL in llama.cpp's AMX code on
these machines), so this reproduces, from its llama_cpp/server/app.py, what the audit of issue 15 tripped over:

- ``GET /v1/models`` lists ``{"id", "object": "model", "owned_by": "me", "permissions": []}``: no ``created``.
- One model runs one request at a time behind two locks: a request waits for the inner lock while holding the outer
  one, and with ``interrupt_requests`` (its default) a running stream checks, after each event it sends, whether the
  outer lock is held (someone is waiting); if so it sends ``data: [DONE]`` and stops. A stream interrupted right after
  its first event is ``200``, a role delta, ``[DONE]``: no content and no finish reason.
- Chunks as ``_convert_text_completion_chunks_to_chat`` writes them: a role delta first, then one content delta per
  token, then ``delta: {}`` with the finish reason. No usage in streams, whatever ``stream_options`` says.
- ``response_format`` json_object, a named ``tool_choice`` (a call of that function, finish reason "tool_calls") and
  ``logprobs`` in OpenAI's shape, in whole answers.

Knobs for the other ways an upstream fails: ``drop_after`` closes the connection mid-stream; ``finish_reason`` may be
set to None (an answer without one); ``stream_usage`` makes it send usage as vLLM and llama-server do.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
WORDS = ["The", " capital", " of", " France", " is", " Paris", "."]


class FakeLlamaCpp:
    def __init__(self, delay: float = 0.01, interrupt_requests: bool = True, drop_after: int | None = None,
                 finish_reason: str | None = "stop", stream_usage: bool = False, words: list[str] | None = None):
        self.delay = delay  # seconds per token
        self.interrupt_requests = interrupt_requests
        self.drop_after = drop_after  # close the stream after this many events (no [DONE])
        self.finish_reason = finish_reason
        self.stream_usage = stream_usage
        self.words = words or WORDS
        self.requests: list[dict[str, Any]] = []  # the bodies it was sent
        self.interrupted = 0  # streams it cut short
        self._outer = asyncio.Lock()
        self._inner = asyncio.Lock()
        self.app = Starlette(routes=[Route("/v1/models", self.models, methods=["GET"]),
                                     Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "me",
                                                         "permissions": []}]})

    async def _acquire(self) -> None:
        """llama_cpp.server.app.get_llama_proxy: the outer lock is held only while waiting for the inner one."""
        await self._outer.acquire()
        try:
            await self._inner.acquire()
        finally:
            self._outer.release()

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        await self._acquire()
        try:
            base = {"id": f"chatcmpl-{uuid.uuid4()}", "created": int(time.time()), "model": MODEL}
            answer = self._answer(body)
            if not body.get("stream"):
                await asyncio.sleep(self.delay * len(self.words))
                self._inner.release()
                return JSONResponse({**base, "object": "chat.completion", "choices": [answer],
                                     "usage": {"prompt_tokens": 9, "completion_tokens": len(self.words),
                                               "total_tokens": 9 + len(self.words)}})
        except BaseException:
            self._inner.release()
            raise
        return StreamingResponse(self._events(base, answer, body), media_type="text/event-stream")

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.words)}
        finish = self.finish_reason
        choice = body.get("tool_choice")
        if isinstance(choice, dict):  # a named function: llama-cpp-python calls it (and says "tool_calls")
            name = choice["function"]["name"]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call__0_{name}_cmpl-1", "type": "function",
                 "function": {"name": name, "arguments": '{"tag": "P-3"}'}}]}
            finish = "tool_calls" if finish else None
        elif (body.get("response_format") or {}).get("type") == "json_object":
            message["content"] = '{"capital": "Paris"}'
        logprobs = None
        if body.get("logprobs"):
            logprobs = {"content": [{"token": w, "logprob": -0.5, "bytes": list(w.encode()),
                                     "top_logprobs": [{"token": w, "logprob": -0.5, "bytes": list(w.encode())}]
                                     [:body.get("top_logprobs") or 0]} for w in self.words]}
        return {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}

    async def _events(self, base: dict[str, Any], answer: dict[str, Any], body: dict[str, Any]) \
            -> AsyncIterator[bytes]:
        chunk = {**base, "object": "chat.completion.chunk"}
        deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant"}, None)]
        deltas += [({"content": w}, None) for w in self.words]
        deltas.append(({}, self.finish_reason))
        sent = 0
        try:
            for delta, finish in deltas:
                if finish is None and not delta:
                    break  # no finish reason: the stream just ends
                await asyncio.sleep(self.delay)
                yield _event({**chunk, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                    "finish_reason": finish}]})
                sent += 1
                if self.drop_after is not None and sent >= self.drop_after:
                    raise ConnectionResetError("the fake upstream drops the connection")
                if self.interrupt_requests and self._outer.locked():  # get_event_publisher's check
                    self.interrupted += 1
                    yield b"data: [DONE]\n\n"
                    return
            if self.stream_usage and (body.get("stream_options") or {}).get("include_usage"):
                n = len(self.words)
                yield _event({**chunk, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": n,
                                                                "total_tokens": 9 + n}})
            yield b"data: [DONE]\n\n"
        finally:
            self._inner.release()


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()
