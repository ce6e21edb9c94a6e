"""The reference engine's public API: ``load(package)`` then ``engine.generate(messages, ...)``.

It keeps the KV cache between calls: a new conversation turn that extends the previous one (same prefix of token
ids) only runs the new tokens. Streaming yields ``Chunk`` objects; the last one has ``finish_reason`` and ``usage``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from . import chat_template
from .config import ModelConfig
from .engine import F32, RunState, Weights, forward
from .errors import InputError
from .package import Package, open_package
from .sampling import Sampler

DEFAULT_CONTEXT = 4096  # KV cache positions allocated when the caller names none (capped by the model's own)


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Chunk:
    text: str  # new text since the previous chunk (may be empty)
    token_ids: list[int] = field(default_factory=list)  # tokens this chunk accounts for
    finish_reason: str | None = None  # "stop" (EOS or a stop string) or "length"; set on the last chunk
    usage: Usage | None = None  # set on the last chunk


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    finish_reason: str
    usage: Usage


def _stop_overlap(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string (held back in streams)."""
    best = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:n]):
                best = n
                break
    return best


class Engine:
    def __init__(self, config: ModelConfig, weights: Weights, tokenizer: Tokenizer, template: str,
                 generation: dict[str, Any], context: int | None = None, name: str = "model"):
        self.config = config
        self.weights = weights
        self.tokenizer = tokenizer
        self.template = template
        self.generation = generation
        self.name = name
        self.state = RunState(config, min(context or DEFAULT_CONTEXT, config.context_length))
        self._cached: list[int] = []  # token ids whose K/V are in the cache, positions 0..len-1
        self._finish = "length"  # why the last generate_ids ended: "stop" (EOS) or "length"
        eos = generation.get("eos_token_ids") or []
        self.eos_ids = {int(i) for i in eos}
        bos_id = generation.get("bos_token_id")
        self._bos = tokenizer.id_to_token(bos_id) if bos_id is not None else ""
        self._eos = tokenizer.id_to_token(min(self.eos_ids)) if self.eos_ids else ""

    @property
    def context(self) -> int:
        return self.state.context

    # --- text <-> tokens ------------------------------------------------------------------------------------------

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = chat_template.render(self.template, messages, self._bos or "", self._eos or "")
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # --- the model --------------------------------------------------------------------------------------------------

    def logits(self, ids: Sequence[int], pos: int = 0, all_logits: bool = False) -> F32:
        """Run ``ids`` at positions pos.. and return logits (the last position's, or all). Updates the cache."""
        out = forward(self.config, self.weights, self.state, np.asarray(ids, np.int64), pos, all_logits)
        self._cached = self._cached[:pos] + list(ids)
        return out

    def _prefill(self, prompt: list[int]) -> F32:
        """Reuse the cached prefix; run the rest of the prompt in one pass. Returns the last position's logits."""
        common = 0
        for a, b in zip(self._cached, prompt, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(prompt) - 1)  # the last prompt token must run to give logits
        return self.logits(prompt[common:], common)

    def generate_ids(self, prompt: list[int], max_tokens: int, sampler: Sampler) -> Iterator[int]:
        """Yield sampled token ids until EOS (not yielded), ``max_tokens``, or the end of the context."""
        self._finish = "length"
        if not prompt:
            raise InputError("the prompt is empty")
        if len(prompt) >= self.context:
            raise InputError(f"the prompt has {len(prompt)} tokens but the context holds {self.context}; "
                             "shorten the conversation")
        logits = self._prefill(prompt)
        pos = len(prompt)
        for n in range(max_tokens):
            token = sampler(logits)
            if token in self.eos_ids:
                self._finish = "stop"
                return
            yield token
            if n + 1 == max_tokens or pos >= self.context:
                return
            logits = self.logits([token], pos)
            pos += 1

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None,
               temperature: float | None = None, top_p: float | None = None, seed: int | None = None,
               stop: Sequence[str] | None = None) -> Iterator[Chunk]:
        gen = self.generation
        max_tokens = int(gen.get("max_tokens", 512) if max_tokens is None else max_tokens)
        if max_tokens < 1:
            raise InputError(f"max_tokens must be at least 1, got {max_tokens}")
        sampler = Sampler(float(gen.get("temperature", 0.0) if temperature is None else temperature),
                          float(gen.get("top_p", 1.0) if top_p is None else top_p), seed)
        stops = [s for s in (stop or []) if s]
        prompt = self.prompt_ids(messages)
        out: list[int] = []
        sent = 0  # characters of the decoded completion already yielded
        pending: list[int] = []  # tokens not yet accounted for in a yielded chunk
        finish = ""
        for token in self.generate_ids(prompt, max_tokens, sampler):
            out.append(token)
            pending.append(token)
            text = self.decode(out)
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                yield Chunk(text[sent:cut], pending)
                pending, finish = [], "stop"
                break
            if text.endswith("\ufffd"):
                continue  # a multi-byte character is still incomplete
            safe = len(text) - _stop_overlap(text, stops)
            if safe > sent:
                yield Chunk(text[sent:safe], pending)
                sent, pending = safe, []
        else:
            finish = self._finish
            tail = self.decode(out)[sent:]
            if tail:
                yield Chunk(tail, pending)
                pending = []
        yield Chunk("", pending, finish, Usage(len(prompt), len(out)))

    def generate(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
        text, ids = [], []
        last = Chunk("")
        for last in self.stream(messages, **kwargs):
            text.append(last.text)
            ids.extend(last.token_ids)
        assert last.finish_reason is not None and last.usage is not None
        return Completion("".join(text), ids, last.finish_reason, last.usage)


def engine_from_package(pkg: Package, context: int | None = None) -> Engine:
    weights = Weights.from_tensors(pkg.config, pkg.tensor_f32)
    tokenizer = Tokenizer.from_file(str(pkg.tokenizer_path))
    return Engine(pkg.config, weights, tokenizer, pkg.chat_template, pkg.generation, context, pkg.name)


def load(package: Path | str, context: int | None = None, verify: bool = False) -> Engine:
    """Load a model package (``verify`` checks every file's sha256 first)."""
    pkg = open_package(package)
    if verify:
        pkg.verify()
    return engine_from_package(pkg, context)
