"""The numpy reference engine as a backend: one model package, one generation at a time, OpenAI-shaped answers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from model_prep.errors import InputError
from model_prep.reference import Chunk

from .disconnect import unless_disconnected
from .errors import APIError, error_body, log
from .parse import Chat
from .schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    Health,
    ModelCard,
    Usage,
)
from .settings import Settings
from .slots import Slots
from .sse import DONE, EventStream, event
from .worker import ChatEngine, Job, Worker

FINGERPRINT = "fieldllm-numpy"


class LocalBackend:
    kind = "numpy"

    def __init__(self, engine: ChatEngine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.created = int(time.time())
        self.slots = Slots(running=1, waiting=settings.queue_size, wait_timeout=settings.queue_timeout)
        self.worker = Worker(engine.name)

    @classmethod
    def from_package(cls, package: Path, settings: Settings) -> LocalBackend:
        from model_prep.reference import load  # numpy and the weights: only when this backend is used

        return cls(load(package, context=settings.context), settings)

    async def models(self) -> list[ModelCard]:
        return [ModelCard(id=self.engine.name, created=self.created, owned_by="fieldllm")]

    def model_ids(self) -> list[str] | None:
        return [self.engine.name]

    def health(self) -> Health:
        return Health(backend="numpy", models=[self.engine.name], busy=self.slots.busy, capacity=self.slots.capacity)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.worker.shutdown)

    async def chat(self, chat: Chat, request: Request) -> Response:
        if chat.request.model != self.engine.name:
            raise APIError(404, f"the model {chat.request.model!r} does not exist here; GET /v1/models lists "
                                f"{self.engine.name!r}", param="model", code="model_not_found")
        prompt_tokens = await self._count_prompt(chat.messages)
        permit = await unless_disconnected(request.receive, self.slots.acquire())
        try:
            job = Job(self.engine, chat.messages, chat.sampling, prompt_tokens, self.settings.generation_timeout)
            self.worker.start(job, permit.release)
        except BaseException:
            permit.release()
            raise

        def stop() -> None:
            # the slot is free as soon as the client is gone: the worker thread runs jobs in order anyway, and the
            # abandoned one stops before its next token
            job.cancel()
            permit.release()

        ids = _Ids(self.engine.name, chat.include_usage)
        if chat.stream:
            async def on_close() -> None:
                stop()

            return EventStream(_events(job, ids), on_close)
        try:
            text, finish, usage = await unless_disconnected(request.receive, _collect(job))
        finally:
            stop()
        return JSONResponse(ChatCompletion(
            id=ids.id, created=ids.created, model=ids.model, system_fingerprint=FINGERPRINT,
            choices=[Choice(message=AssistantMessage(content=text), finish_reason=finish)], usage=usage,
        ).model_dump())

    async def _count_prompt(self, messages: list[dict[str, str]]) -> int:
        """Render and tokenize the prompt before answering 200, so that bad conversations get a 400.

        Tokenizing is stateless, so it runs on a pool thread beside a generation, not in the engine's queue.
        """
        try:
            n = len(await anyio.to_thread.run_sync(self.engine.prompt_ids, messages))
        except InputError as e:
            raise APIError(400, str(e), param="messages") from None
        if n >= self.engine.context:
            raise APIError(400, f"the prompt has {n} tokens but this model's context holds {self.engine.context}; "
                                "shorten the conversation", param="messages", code="context_length_exceeded")
        return n


class _Ids:
    """What every chunk of one answer repeats."""

    def __init__(self, model: str, include_usage: bool = False):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def chunk(self, delta: Delta, finish: FinishReason | None = None, usage: Usage | None = None,
              choices: bool = True) -> bytes:
        body = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, usage=usage,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish)] if choices else [],
                                   system_fingerprint=FINGERPRINT).model_dump()
        for choice in body["choices"]:  # as OpenAI does: a delta holds only what it carries ({} on the last one)
            choice["delta"] = delta.model_dump(exclude_none=True)
        if not self.include_usage:
            del body["usage"]  # present (null until the end) only when asked for, as with OpenAI
        return event(body)


def _finish(chunk: Chunk) -> FinishReason:
    return "length" if chunk.finish_reason == "length" else "stop"


def _usage(chunk: Chunk) -> Usage:
    u = chunk.usage
    assert u is not None
    return Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, total_tokens=u.total_tokens)


async def _collect(job: Job) -> tuple[str, FinishReason, Usage]:
    parts: list[str] = []
    try:
        async for chunk in job.chunks():
            parts.append(chunk.text)
            if chunk.finish_reason:
                return "".join(parts), _finish(chunk), _usage(chunk)
    except InputError as e:
        raise APIError(400, str(e), param="messages") from None
    raise RuntimeError("the engine stopped without a finish_reason")


async def _events(job: Job, ids: _Ids) -> AsyncGenerator[bytes, None]:
    """OpenAI's stream: a role delta, content deltas, the finish_reason, [usage], [DONE]."""
    yield ids.chunk(Delta(role="assistant", content=""))
    try:
        async for chunk in job.chunks():
            if chunk.text:
                yield ids.chunk(Delta(content=chunk.text))
            if chunk.finish_reason:
                yield ids.chunk(Delta(), _finish(chunk))
                if ids.include_usage:
                    yield ids.chunk(Delta(), usage=_usage(chunk), choices=False)
                yield DONE
                return
    except InputError as e:  # too late for a status code: OpenAI streams errors as an event
        yield event(error_body(str(e), "invalid_request_error", "messages"))
        return
    except Exception:  # a bug in the engine: the client still gets a well-formed end of stream
        log.exception("generation failed")
        yield event(error_body("the engine failed; see the server log", "server_error"))
        return
    yield event(error_body("the engine stopped without finishing the answer; see the server log", "server_error"))
