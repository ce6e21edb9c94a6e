"""A backend that forwards validated requests to another OpenAI-compatible server (vLLM, llama.cpp, Ollama).

Only what this server supports is forwarded (the same validation as the numpy backend), with max_tokens always set so
that the server's cap holds upstream too. The upstream's 4xx answers pass through when they are OpenAI-shaped;
anything else from it becomes 502 (or 504 for a timeout).

What comes back is checked, never taken on trust: an answer passes only with a finish reason. Streams pass through
event by event; one that ends without a finish reason (llama-cpp-python's server ends earlier streams with ``[DONE]``
and nothing else when a new request arrives) is a 502 if nothing of it was sent yet, else it ends with an error event,
never with ``[DONE]``. A stream asked for with ``stream_options.include_usage`` must carry its usage: an upstream
that leaves it out is remembered, and later such requests are asked for unstreamed and replayed as a stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from .answer import check_calls, check_content
from .audit import Audit
from .disconnect import unless_disconnected
from .errors import APIError, error_body
from .parse import Chat
from .schemas import Health, ModelCard
from .settings import Settings
from .slots import Slots
from .sse import DONE, EventStream, event

MODELS_TTL = 30.0  # seconds a model list from the upstream is trusted
_ERROR_BODY_LIMIT = 64 * 1024  # bytes of an upstream error answer we read
_PASSED_THROUGH = {400, 404, 413, 422, 429}  # upstream statuses that are about the request, not about us
FINISHED = {"stop", "length", "tool_calls", "content_filter", "function_call"}  # OpenAI's finish reasons
_INTERRUPTED = ("llama-cpp-python's server does this to a stream when another request arrives: start it with "
                "--interrupt_requests False, or give fieldllm --upstream-parallel 1")


def base_url(url: str) -> str:
    """The OpenAI base URL (ending in /v1) from what the user gave: with or without /v1, trailing slash or not."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class UpstreamBackend:
    kind = "upstream"

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        # transport: tests may route the upstream in-process
        assert settings.upstream
        self.base = base_url(settings.upstream)
        headers = {"accept-encoding": "identity"}  # pass streams through as they come, not compressed
        if settings.upstream_token:
            headers["authorization"] = f"Bearer {settings.upstream_token}"
        self._headers = headers
        self._transport = transport
        self._timeout = httpx.Timeout(connect=10.0, read=settings.generation_timeout, write=30.0, pool=10.0)
        self._client: httpx.AsyncClient | None = None
        self.slots = Slots(running=settings.upstream_parallel, waiting=settings.queue_size,
                           wait_timeout=settings.queue_timeout)
        self.audit = Audit(settings.audit, "server-upstream", self.base, None) if settings.audit else None
        self._models: list[ModelCard] = []
        self._models_at = -MODELS_TTL
        self.streams_usage: bool | None = None  # does the upstream honour stream_options.include_usage? (learned)

    @property
    def client(self) -> httpx.AsyncClient:
        """Opened on first use and again after ``aclose``, so an app whose lifespan restarts keeps working."""
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout, transport=self._transport)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def model_ids(self) -> list[str] | None:
        return None  # known only by asking the upstream, which may come and go

    def health(self) -> Health:
        return Health(backend="upstream", models=[m.id for m in self._models], busy=self.slots.busy,
                      capacity=self.slots.capacity)

    async def models(self) -> list[ModelCard]:
        if time.monotonic() - self._models_at < MODELS_TTL:
            return self._models
        try:
            r = await self.client.get(f"{self.base}/models")
        except httpx.HTTPError as e:
            raise _unreachable(self.base, e) from None
        if r.status_code != 200:
            raise APIError(502, f"the upstream server answered {r.status_code} to GET /models", code="upstream_error")
        self._models, self._models_at = listed_models(r.content), time.monotonic()
        return self._models

    async def chat(self, chat: Chat, request: Request) -> Response:
        known = [m.id for m in await self.models()]
        if chat.request.model not in known:
            raise APIError(404, f"the model {chat.request.model!r} does not exist upstream; GET /v1/models lists "
                                f"{', '.join(map(repr, known)) or 'none'}", param="model", code="model_not_found")
        permit = await unless_disconnected(request.receive, self.slots.acquire())
        try:
            upstream = await unless_disconnected(request.receive, self._send(chat))
        except BaseException:
            permit.release()
            raise
        if upstream.status_code != 200:
            try:
                return await self._error(upstream)
            finally:
                permit.release()
        if chat.stream and not self._whole(chat):
            relay = _relay(upstream, chat.include_usage, self._learn_usage)
            try:  # nothing goes out before the upstream says something: a stream that ends empty is a 502
                first = await unless_disconnected(request.receive, anext(relay))
            except BaseException:
                permit.release()
                await relay.aclose()
                await upstream.aclose()
                raise

            async def on_close() -> None:
                permit.release()
                await upstream.aclose()

            return EventStream(_prepend(first, relay), on_close)
        try:
            body = await unless_disconnected(request.receive, upstream.aread())
        except httpx.HTTPError as e:
            raise _unreachable(self.base, e) from None
        finally:
            permit.release()
            await upstream.aclose()
        answer = _check_upstream_answer(body, chat)
        if _checked(chat) and self.audit:
            choice = answer["choices"][0]
            self.audit.record(chat, choice["message"].get("content"), choice["message"].get("tool_calls"),
                              choice.get("finish_reason"), answer.get("usage"), answer.get("timings"),
                              model=answer.get("model"))
        if chat.stream:
            return EventStream(_replay(answer, chat.include_usage), _nothing)
        return Response(body, media_type="application/json")

    def _whole(self, chat: Chat) -> bool:
        """Ask the upstream for the whole answer (and replay it as a stream if one was asked for)?"""
        return _checked(chat) or (chat.stream and chat.include_usage and self.streams_usage is False)

    def _learn_usage(self, honoured: bool) -> None:
        self.streams_usage = honoured

    async def _send(self, chat: Chat) -> httpx.Response:
        payload = _payload(chat)
        if self._whole(chat):
            payload["stream"] = False  # a structured answer is checked whole before any of it goes out
            payload.pop("stream_options", None)
        req = self.client.build_request("POST", f"{self.base}/chat/completions", json=payload)
        try:
            return await self.client.send(req, stream=True)
        except httpx.HTTPError as e:
            raise _unreachable(self.base, e) from None

    async def _error(self, upstream: httpx.Response) -> Response:
        body = b""
        try:
            async for part in upstream.aiter_bytes():
                body += part
                if len(body) > _ERROR_BODY_LIMIT:
                    break
        except httpx.HTTPError:
            pass
        finally:
            await upstream.aclose()
        status = upstream.status_code
        # the client's own mistakes pass through; a refused token or a broken upstream is the server's problem
        if status in _PASSED_THROUGH and _is_openai_error(body):
            headers = {"Retry-After": upstream.headers["retry-after"]} if "retry-after" in upstream.headers else None
            return Response(body, status, headers, media_type="application/json")
        raise APIError(502, f"the upstream server answered {status}: {body[:300].decode(errors='replace')}",
                       code="upstream_error")


def _checked(chat: Chat) -> bool:
    """Structured requests: the upstream's answer is checked against the schema or tools before it is passed on."""
    return chat.structure.grammar is not None


# fields passed to the upstream as the client sent them (this server checked them; the upstream honours them)
_STRUCTURED_FIELDS = ("response_format", "tools", "tool_choice", "parallel_tool_calls", "logprobs", "top_logprobs",
                      "logit_bias", "frequency_penalty", "presence_penalty", "top_k", "min_p")


def _payload(chat: Chat) -> dict[str, Any]:
    s = chat.sampling
    raw = chat.request.model_dump(by_alias=True, exclude_none=True)
    messages: list[dict[str, Any]] = chat.messages
    if any(m.get("role") == "tool" or m.get("tool_calls") for m in raw["messages"]):
        messages = [_plain_message(m) for m in raw["messages"]]  # the upstream's own template renders tool turns
    out: dict[str, Any] = {"model": chat.request.model, "messages": messages, "max_tokens": s.max_tokens,
                           "stream": chat.stream}
    for key in _STRUCTURED_FIELDS:
        if key in raw:
            out[key] = raw[key]
    if chat.stream and chat.include_usage:
        out["stream_options"] = {"include_usage": True}
    for key, value in (("temperature", s.temperature), ("top_p", s.top_p), ("seed", s.seed)):
        if value is not None:
            out[key] = value
    if s.seed is not None and s.seed >= 1 << 63:  # keep it in the signed 64-bit range servers expect
        out["seed"] = s.seed - (1 << 64)
    if s.stop:
        out["stop"] = s.stop
    return out


def _plain_message(m: dict[str, Any]) -> dict[str, Any]:
    content = m.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content)
    out = {**m, "content": content, "role": "system" if m["role"] == "developer" else m["role"]}
    return {k: v for k, v in out.items() if v is not None or k == "content"}


def listed_models(body: bytes) -> list[ModelCard]:
    """The model list of an OpenAI-compatible server, read for what this server uses: each entry's ``id`` (and
    ``created`` and ``owned_by`` when given). llama-cpp-python sends no ``created``; vLLM, llama-server and Ollama
    add fields of their own; none of that matters here."""
    try:
        data = json.loads(body)["data"]
        ids = [entry["id"] for entry in data]
    except (ValueError, RecursionError, KeyError, TypeError):
        raise APIError(502, "the upstream server's model list is not OpenAI-shaped (a JSON object whose data lists "
                            "models with an id)", code="upstream_error") from None
    if not all(isinstance(i, str) and i for i in ids):
        raise APIError(502, "the upstream server's model list has an entry without a string id", code="upstream_error")
    now = int(time.time())
    return [ModelCard(id=entry["id"], created=entry["created"] if type(entry.get("created")) is int else now,
                      owned_by=entry["owned_by"] if isinstance(entry.get("owned_by"), str) else "upstream")
            for entry in data]


def _check_upstream_answer(body: bytes, chat: Chat) -> dict[str, Any]:
    """The upstream's whole answer, if it is OpenAI-shaped, finished, and fits the schema or tools asked for; else a
    502."""
    try:
        answer = json.loads(body)
        choice = answer["choices"][0]
        message, finish = choice["message"], choice.get("finish_reason")
        if not isinstance(message, dict):
            raise TypeError
    except (ValueError, RecursionError, KeyError, IndexError, TypeError):
        raise APIError(502, "the upstream server's answer is not OpenAI-shaped", code="upstream_error") from None
    if finish not in FINISHED:
        raise APIError(502, f"the upstream server's answer ended without a finish reason ({finish!r}); it was "
                            "withheld", code="upstream_incomplete")
    if chat.stream and chat.include_usage and not isinstance(answer.get("usage"), dict):
        raise APIError(502, "the upstream server's answer has no usage, which stream_options.include_usage asks for",
                       code="upstream_error")
    if not _checked(chat):
        return dict(answer)
    try:
        if chat.structure.calls_tools:
            calls = message.get("tool_calls") or []
            if finish in ("stop", "tool_calls"):
                check_calls(calls, chat.structure)
        elif finish == "stop":
            check_content(message.get("content") or "", chat.structure)
    except APIError as e:
        raise APIError(502, f"the upstream server's {e.message}", code="upstream_invalid_output") from None
    return dict(answer)


async def _nothing() -> None:
    return None


async def _replay(answer: dict[str, Any], include_usage: bool) -> AsyncGenerator[bytes, None]:
    """A checked whole answer as OpenAI's stream: role, content, each tool call, the finish reason, [usage]."""
    choice = answer["choices"][0]
    message = choice["message"]
    base = {k: answer.get(k) for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        return event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                           "logprobs": logprobs}]})

    yield chunk({"role": "assistant", "content": ""})
    if message.get("content") or choice.get("logprobs"):  # the logprobs of the whole answer go with its content
        yield chunk({"content": message.get("content") or ""}, logprobs=choice.get("logprobs"))
    for i, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": i, **call}]})
    yield chunk({}, choice.get("finish_reason"))
    if include_usage and answer.get("usage"):
        yield event({**base, "choices": [], "usage": answer["usage"]})
    yield DONE


def _is_openai_error(body: bytes) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), dict) and "message" in parsed["error"]


def _unreachable(base: str, e: httpx.HTTPError) -> APIError:
    if isinstance(e, httpx.TimeoutException):
        return APIError(504, f"the upstream server at {base} did not answer in time ({type(e).__name__})",
                        code="upstream_timeout")
    return APIError(502, f"the upstream server at {base} is unreachable ({type(e).__name__}: {e})",
                    code="upstream_unreachable")


async def _prepend(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    async with aclosing(rest):
        yield first
        async for part in rest:
            yield part


async def _sse_data(upstream: httpx.Response) -> AsyncGenerator[str | None, None]:
    """The ``data`` of each server-sent event (lines ending in \\n, \\r\\n or \\r); None for a comment-only event (a
    keep-alive ping, passed on so that the client's connection stays open through a long prefill)."""
    data: list[str] = []
    comment = False
    async for line in upstream.aiter_lines():
        if line == "":
            if data:
                yield "\n".join(data)
            elif comment:
                yield None
            data, comment = [], False
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith(":"):
            comment = True
    if data:  # the last event lacked its blank line
        yield "\n".join(data)


class _Incomplete(Exception):
    """The upstream's stream cannot be passed on as a finished answer (the message says why)."""


async def _relay(upstream: httpx.Response, want_usage: bool, learn_usage: Callable[[bool], None]) \
        -> AsyncGenerator[bytes, None]:
    """The upstream's stream, event by event, checked: it must end with a finish reason (and usage, if asked for).

    Events before the first that carries anything (the role delta) are held back and go out with it, so that a stream
    that ends with nothing in it raises APIError (a 502) before the client has an answer; after that a failure ends
    the stream with an error event, never with [DONE].
    """
    held: list[bytes] = []
    sent = finished = usage = False
    try:
        try:
            async for data in _sse_data(upstream):
                if data is None:
                    held.append(b": ping\n\n")
                    continue
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except (ValueError, RecursionError):
                    raise _Incomplete("sent an event that is not JSON") from None
                if not isinstance(chunk, dict):
                    raise _Incomplete("sent an event that is not a JSON object")
                if isinstance(chunk.get("error"), dict):  # the upstream's own error event: passed on, and the end
                    if not sent:
                        raise _Incomplete(f"failed: {str(chunk['error'].get('message'))[:300]}")
                    yield event(data)
                    return
                listed = chunk.get("choices")
                choices: list[Any] = listed if isinstance(listed, list) else []
                reasons = [c.get("finish_reason") for c in choices if isinstance(c, dict)]
                if any(r is not None and r not in FINISHED for r in reasons):
                    raise _Incomplete(f"ended the answer with finish reason {reasons!r}")
                finished = finished or any(r in FINISHED for r in reasons)
                usage = usage or isinstance(chunk.get("usage"), dict)
                held.append(event(data))
                if finished or usage or any(isinstance(c, dict) and _says_something(c.get("delta")) for c in choices):
                    yield b"".join(held)
                    held, sent = [], True
        except httpx.HTTPError as e:
            raise _Incomplete(f"broke off the answer ({type(e).__name__})") from None
        if not finished:
            raise _Incomplete(f"ended the stream without a finish reason; {_INTERRUPTED}" if not sent else
                              "ended the stream without a finish reason: the answer is incomplete")
        if want_usage:
            learn_usage(usage)
            if not usage:
                raise _Incomplete("sent no usage, which stream_options.include_usage asks for (later requests with "
                                  "it are answered from a whole answer of the upstream's, replayed as a stream)")
        yield b"".join(held) + DONE
    except _Incomplete as e:
        message = f"the upstream server {e}"
        if not sent:
            raise APIError(502, message, code="upstream_incomplete") from None
        yield event(error_body(message, "upstream_error", code="upstream_incomplete"))


def _says_something(delta: Any) -> bool:
    return isinstance(delta, dict) and any(v not in (None, "", []) for k, v in delta.items() if k != "role")
