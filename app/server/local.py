"""The local engine as a backend (native C kernels or the numpy reference): one model package, one generation at a
time, OpenAI-shaped answers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path
from typing import Literal

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from model_prep.errors import InputError
from model_prep.reference import Chunk

from .answer import DeltaSplitter, final_message, logprobs, merge_logprobs
from .audit import Audit
from .disconnect import unless_disconnected
from .errors import APIError, error_body, log
from .parse import Chat
from .schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    FinishReason,
    Health,
    ModelCard,
    Timings,
    Usage,
)
from .settings import Settings
from .slots import Slots
from .sse import DONE, EventStream, event
from .worker import ChatEngine, Job, Worker

SMALL_PROMPT = 8192  # characters of a prompt tokenized at once, beside everything else (a few milliseconds); longer
# prompts and grammar compiles take turns, one at a time, in a bounded line of their own (Slots: 429 when it is full),
# so that a burst of huge prompts neither runs uncounted on every core nor keeps a small request waiting


class LocalBackend:
    def __init__(self, engine: ChatEngine, settings: Settings, kind: Literal["native", "numpy"] = "numpy"):
        self.engine = engine
        self.kind: str = kind  # which engine answers: in /health, the system_fingerprint and the audit log
        self.settings = settings
        self.created = int(time.time())
        self.slots = Slots(running=1, waiting=settings.queue_size, wait_timeout=settings.queue_timeout)
        self.preparing = Slots(running=1, waiting=settings.queue_size, wait_timeout=settings.queue_timeout)
        self.max_token_chars = _max_token_chars(engine)
        self.worker = Worker(engine.name, settings.blas_threads)
        self.audit = Audit(settings.audit, f"server-{kind}", engine.name, getattr(engine, "package_id", None)) \
            if settings.audit else None

    @classmethod
    def from_package(cls, package: Path, settings: Settings) -> LocalBackend:
        # numpy, the weights and the native library: only when this backend is used
        if settings.engine == "numpy":
            from model_prep.reference import load

            return cls(load(package, context=settings.context), settings, "numpy")
        from app.native.build import NativeBuildError
        from app.native.model import load as load_native

        try:
            engine = load_native(package, context=settings.context, threads=settings.threads,
                                 decode_threads=settings.decode_threads)
        except NativeBuildError as e:
            raise InputError(str(e)) from None
        return cls(engine, settings, "native")

    async def models(self) -> list[ModelCard]:
        return [ModelCard(id=self.engine.name, created=self.created, owned_by="fieldllm")]

    def model_ids(self) -> list[str] | None:
        return [self.engine.name]

    def health(self) -> Health:
        return Health(backend="native" if self.kind == "native" else "numpy", models=[self.engine.name],
                      busy=self.slots.busy + self.preparing.busy, capacity=self.slots.capacity)

    async def aclose(self) -> None:
        await anyio.to_thread.run_sync(self.worker.shutdown)

    async def chat(self, chat: Chat, request: Request) -> Response:
        if chat.request.model != self.engine.name:
            raise APIError(404, f"the model {chat.request.model!r} does not exist here; GET /v1/models lists "
                                f"{self.engine.name!r}", param="model", code="model_not_found")
        chars = _prompt_chars(chat)
        if self.max_token_chars and chars > self.engine.context * self.max_token_chars:
            # no token is longer than max_token_chars characters: this prompt cannot fit, whatever it tokenizes to
            raise APIError(400, f"the prompt has {chars} characters, more than this model's context of "
                                f"{self.engine.context} tokens can hold; shorten the conversation", param="messages",
                           code="context_length_exceeded")
        if chars <= SMALL_PROMPT and chat.structure.grammar is None:
            prompt_tokens = await self._count_prompt(chat)
        else:
            turn = await unless_disconnected(request.receive, self.preparing.acquire())
            try:
                prompt_tokens = await self._count_prompt(chat)
                if chat.structure.grammar is not None:
                    await self._compile(chat)
            finally:
                turn.release()
        permit = await unless_disconnected(request.receive, self.slots.acquire())
        try:
            job = Job(self.engine, chat.messages, chat.sampling, prompt_tokens, self.settings.generation_timeout,
                      chat.tools)
            self.worker.start(job, permit.release)
        except BaseException:
            permit.release()
            raise

        def stop() -> None:
            # the slot is free as soon as the client is gone: the worker thread runs jobs in order anyway, and the
            # abandoned one stops before its next token
            job.cancel()
            permit.release()

        ids = _Ids(self.engine.name, chat.include_usage, f"fieldllm-{self.kind}")
        if chat.stream:
            async def on_close() -> None:
                stop()

            return EventStream(_events(job, ids, chat, self.engine.decode, self.audit), on_close)
        try:
            answer = await unless_disconnected(request.receive, _collect(job, self.engine.decode))
        finally:
            stop()
        text, finished, usage, choice_logprobs, timings = answer
        content, tool_calls, finish = final_message(text, finished, chat.structure)
        body = ChatCompletion(
            id=ids.id, created=ids.created, model=ids.model, system_fingerprint=ids.fingerprint,
            choices=[Choice(message=AssistantMessage(content=content, tool_calls=tool_calls),
                            finish_reason=finish, logprobs=choice_logprobs)],
            usage=usage, timings=timings,
        ).model_dump()
        if timings is None:
            del body["timings"]
        for choice in body["choices"]:  # as OpenAI's: tool_calls only when there are calls
            if choice["message"]["tool_calls"] is None:
                del choice["message"]["tool_calls"]
        if self.audit:
            message = body["choices"][0]["message"]
            self.audit.record(chat, message["content"], message.get("tool_calls"), finish, body["usage"],
                              body.get("timings"))
        return JSONResponse(body)

    async def _compile(self, chat: Chat) -> None:
        """Compile the grammar before answering 200 (a schema it cannot take is a 400); kept for later requests."""
        grammar = chat.structure.grammar
        assert grammar is not None
        try:
            await anyio.to_thread.run_sync(lambda: self.engine.grammars().compile(grammar))
        except InputError as e:
            raise APIError(400, str(e), param="tools" if chat.tools else "response_format",
                           code="unsupported_schema") from None

    async def _count_prompt(self, chat: Chat) -> int:
        """Render and tokenize the prompt before answering 200, so that bad conversations get a 400.

        Tokenizing is stateless, so it runs on a pool thread beside a generation, not in the engine's queue.
        """
        try:
            n = len(await anyio.to_thread.run_sync(self.engine.prompt_ids, chat.messages, chat.tools))
        except InputError as e:
            raise APIError(400, str(e), param="messages") from None
        if n >= self.engine.context:
            raise APIError(400, f"the prompt has {n} tokens but this model's context holds {self.engine.context}; "
                                "shorten the conversation", param="messages", code="context_length_exceeded")
        return n


def _prompt_chars(chat: Chat) -> int:
    return sum(len(m.get("content") or "") for m in chat.messages) + \
        (len(json.dumps(chat.tools)) if chat.tools else 0)


def _max_token_chars(engine: ChatEngine) -> int | None:
    """The longest token of the engine's vocabulary, in characters (its tokenizer's own spelling, which for byte-level
    BPE counts bytes, never fewer than the characters they spell); None when the engine has no tokenizer to ask."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "get_vocab"):
        return getattr(engine, "max_token_chars", None)
    return max(map(len, tokenizer.get_vocab(with_added_tokens=True)), default=None)


class _Ids:
    """What every chunk of one answer repeats."""

    def __init__(self, model: str, include_usage: bool = False, fingerprint: str = "fieldllm-numpy"):
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.fingerprint = fingerprint
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def chunk(self, delta: Delta, finish: FinishReason | None = None, usage: Usage | None = None,
              choices: bool = True, logprobs: ChoiceLogprobs | None = None, timings: Timings | None = None) -> bytes:
        body = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, usage=usage,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish, logprobs=logprobs)]
                                   if choices else [], system_fingerprint=self.fingerprint,
                                   timings=timings).model_dump()
        if timings is None:
            del body["timings"]
        for choice in body["choices"]:  # as OpenAI does: a delta holds only what it carries ({} on the last one)
            choice["delta"] = delta.model_dump(exclude_none=True)
        if not self.include_usage:
            del body["usage"]  # present (null until the end) only when asked for, as with OpenAI
        return event(body)


def _finish(chunk: Chunk) -> FinishReason:
    return "length" if chunk.finish_reason == "length" else "stop"


def _timings(chunk: Chunk) -> Timings | None:
    return Timings.model_validate(chunk.timings.to_json()) if chunk.timings else None


def _usage(chunk: Chunk) -> Usage:
    u = chunk.usage
    assert u is not None
    return Usage(prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, total_tokens=u.total_tokens)


async def _collect(job: Job, decode: Callable[[Sequence[int]], str]) \
        -> tuple[str, FinishReason, Usage, ChoiceLogprobs | None, Timings | None]:
    parts: list[str] = []
    probs: list[ChoiceLogprobs | None] = []
    try:
        async for chunk in job.chunks():
            parts.append(chunk.text)
            probs.append(logprobs(chunk, decode))
            if chunk.finish_reason:
                return "".join(parts), _finish(chunk), _usage(chunk), merge_logprobs(probs), _timings(chunk)
    except InputError as e:
        raise APIError(400, str(e), param="messages") from None
    raise RuntimeError("the engine stopped without a finish_reason")


async def _events(job: Job, ids: _Ids, chat: Chat, decode: Callable[[Sequence[int]], str],
                  audit: Audit | None = None) -> AsyncGenerator[bytes, None]:
    """OpenAI's stream: a role delta, content and tool-call deltas, the finish_reason, [usage], [DONE]."""
    yield ids.chunk(Delta(role="assistant", content=""))
    split = DeltaSplitter(chat.structure)
    try:
        async for chunk in job.chunks():
            choice_logprobs = logprobs(chunk, decode)
            for content, call in split.push(chunk.text, final=bool(chunk.finish_reason)):
                yield ids.chunk(Delta(content=content, tool_calls=[call] if call else None), logprobs=choice_logprobs)
                choice_logprobs = None
            if choice_logprobs is not None:  # tokens held back (a stop string's start): their logprobs still go out
                yield ids.chunk(Delta(), logprobs=choice_logprobs)
            if chunk.finish_reason:
                content, calls, finish = final_message("".join(split.text), _finish(chunk), chat.structure)
                timings = _timings(chunk)
                if audit:
                    audit.record(chat, content, [c.model_dump() for c in calls or []] or None, finish,
                                 _usage(chunk).model_dump(), timings.model_dump() if timings else None)
                yield ids.chunk(Delta(), finish, timings=timings)
                if ids.include_usage:
                    yield ids.chunk(Delta(), usage=_usage(chunk), choices=False)
                yield DONE
                return
    except InputError as e:  # too late for a status code: OpenAI streams errors as an event
        yield event(error_body(str(e), "invalid_request_error", "messages"))
        return
    except APIError as e:  # the finished answer failed its check: an error, never a finish
        yield event(error_body(e.message, e.type, code=e.code))
        return
    except Exception:  # a bug in the engine: the client still gets a well-formed end of stream
        log.exception("generation failed")
        yield event(error_body("the engine failed; see the server log", "server_error"))
        return
    yield event(error_body("the engine stopped without finishing the answer; see the server log", "server_error"))
