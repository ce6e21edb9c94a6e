"""A stand-in for the numpy engine with the same interface: instant (or paced) answers, and a record of its runs.

It validates messages and sampling parameters with model_prep's own code, so the server's error paths are the real
ones; only the model is fake. Tests use it where the real model's speed or fixed answers would get in the way:
fuzzing, queueing, disconnects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from model_prep.errors import InputError
from model_prep.reference import Chunk, Decoding, Usage
from model_prep.reference.chat_template import check_messages
from model_prep.reference.sampling import Sampler

ANSWER = "The capital of France is Paris."


class _NoGrammars:
    """The fake model cannot follow a grammar, so it refuses structured requests as a real engine refuses what it
    cannot honour (a 400), rather than answer them with text that would fail the server's check."""

    def compile(self, spec: object) -> None:
        raise InputError("the fake engine cannot follow a grammar")


class FakeEngine:
    name = "fake-model"

    def __init__(self, context: int = 64, delay: float = 0.0, answer: str = ANSWER, endless: bool = False,
                 fail_after: int | None = None):
        self._context = context
        self.delay = delay  # seconds per token
        self.words = answer.split(" ")
        self.endless = endless  # keep talking until max_tokens (for disconnect and timeout tests)
        self.fail_after = fail_after  # raise after this many tokens (a bug in the engine)
        self.runs: list[int] = []  # tokens produced by each finished or abandoned generation
        self.running = 0
        self.most_at_once = 0  # the server must never run two generations on one engine at once
        self.started = threading.Event()  # set when a generation starts
        self._lock = threading.Lock()

    @property
    def context(self) -> int:
        return self._context

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(f"<{i}>" for i in ids)

    def grammars(self) -> _NoGrammars:
        return _NoGrammars()

    def prompt_ids(self, messages: list[dict[str, str]], tools: list[dict[str, Any]] | None = None) -> list[int]:
        # one token per message plus one per word: enough to make long prompts overflow a small context
        return list(range(sum(1 + len(m["content"].split()) for m in check_messages(messages))))

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None,
               temperature: float | None = None, top_p: float | None = None, seed: int | None = None,
               stop: Sequence[str] | None = None, decoding: Decoding | None = None,
               tools: list[dict[str, Any]] | None = None,
               cancelled: Callable[[], bool] | None = None) -> Iterator[Chunk]:
        prompt = len(self.prompt_ids(messages))
        Sampler(0.0 if temperature is None else temperature, 1.0 if top_p is None else top_p, seed)
        limit = max_tokens or 512
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        produced, text = 0, ""
        try:
            while produced < limit and (self.endless or produced < len(self.words)):
                time.sleep(self.delay)
                if produced == self.fail_after:
                    raise RuntimeError("the fake engine broke")
                piece = ("" if produced == 0 else " ") + self.words[produced % len(self.words)]
                produced += 1
                text += piece
                cut = min((text.find(s) for s in stop or [] if s and s in text), default=-1)
                if cut >= 0:
                    yield Chunk(piece[:max(0, len(piece) - (len(text) - cut))], [produced])
                    yield Chunk("", [], "stop", Usage(prompt, produced))
                    return
                yield Chunk(piece, [produced])
            yield Chunk("", [], "length" if produced == limit else "stop", Usage(prompt, produced))
        finally:
            with self._lock:
                self.running -= 1
                self.runs.append(produced)
