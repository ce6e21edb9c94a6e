"""The reference engine's public API: ``load(package)`` then ``engine.generate(messages, ...)``.

It keeps the KV cache between calls: a new conversation turn that extends the previous one (same prefix of token
ids) only runs the new tokens. Streaming yields ``Chunk`` objects; the last one has ``finish_reason`` and ``usage``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tokenizers import Tokenizer

from ..config import ModelConfig
from ..errors import InputError
from ..package import Package, open_package
from . import chat_template
from .forward import F32, RunState, Weights, forward
from .grammar import Constraint, Grammars, GrammarSpec
from .sampling import Pick, Sampler
from .weights import DEFAULT_CACHE_BYTES, PackageMatrices

DEFAULT_CONTEXT = 4096  # KV cache positions allocated when the caller names none (capped by the model's own)
PREFILL_CHUNK = 128  # prompt tokens per forward pass: a caller that gives up is heard between passes (about 0.5 s
# each for SmolLM2-135M on one CPU core); prompts up to this long run in one pass, as before


class Cancelled(Exception):
    """The caller's ``cancelled()`` said to stop (checked between prefill chunks); the KV cache keeps what ran."""


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Timings:
    """Where one completion's time went (milliseconds), as llama.cpp's server reports them."""

    prompt_ms: float  # prefill of the tokens not already in the KV cache
    prompt_tokens: int  # of those: tokens actually run
    predicted_ms: float  # from the first new token to the end
    predicted_tokens: int

    def to_json(self) -> dict[str, float]:
        return {"prompt_ms": round(self.prompt_ms, 3), "prompt_n": self.prompt_tokens,
                "prompt_per_second": _rate(self.prompt_tokens, self.prompt_ms),
                "predicted_ms": round(self.predicted_ms, 3), "predicted_n": self.predicted_tokens,
                "predicted_per_second": _rate(self.predicted_tokens, self.predicted_ms)}


def _rate(n: int, ms: float) -> float:
    return round(1000 * n / ms, 3) if ms > 0 else 0.0


@dataclass(frozen=True)
class Decoding:
    """What a request asks beyond temperature, top_p and seed (sampling.py says in which order they apply)."""

    top_k: int = 0
    min_p: float = 0.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    logprobs: bool = False  # report each token's log-probability (Chunk.logprobs)
    top_logprobs: int = 0  # and the this-many most likely alternatives
    grammar: GrammarSpec | None = None  # the output must match it (model_prep/reference/grammar.py)


@dataclass
class Chunk:
    text: str  # new text since the previous chunk (may be empty)
    token_ids: list[int] = field(default_factory=list)  # tokens this chunk accounts for
    finish_reason: str | None = None  # "stop" (EOS, a stop string or a complete grammar) or "length"; on the last
    usage: Usage | None = None  # set on the last chunk
    logprobs: list[Pick] = field(default_factory=list)  # one per token of token_ids, when Decoding.logprobs
    timings: Timings | None = None  # set on the last chunk


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


class Model(Protocol):
    """The transformer an Engine runs on, with its own KV cache: NumpyModel here (the ground truth); app/native runs
    the C kernels of app/engine/cpu/cpu_engine.c behind the same two members."""

    @property
    def context(self) -> int: ...  # KV positions: forward accepts positions 0 .. context - 1

    def forward(self, ids: Sequence[int], pos: int, all_logits: bool = False) -> F32:
        """Run ``ids`` at positions pos.. filling the KV cache; logits [vocab] of the last (all: [T, vocab])."""
        ...


class NumpyModel:
    """forward.py's transformer on its Weights (kept as stored, dequantized when used) and a RunState of ``context``
    positions (``kv_f16``: its KV cache rounded as the WebGPU engine's f16 cache, forward.py kv_f16)."""

    def __init__(self, config: ModelConfig, weights: Weights, context: int, kv_f16: bool = False):
        self.config = config
        self.weights = weights
        self.state = RunState(config, context, kv_f16)

    @property
    def context(self) -> int:
        return self.state.context

    def forward(self, ids: Sequence[int], pos: int, all_logits: bool = False) -> F32:
        return forward(self.config, self.weights, self.state, np.asarray(ids, np.int64), pos, all_logits)


def context_for(config: ModelConfig, context: int | None) -> int:
    """KV positions to allocate: ``context`` (default DEFAULT_CONTEXT), capped by the model's own."""
    return min(context or DEFAULT_CONTEXT, config.context_length)


class Engine:
    def __init__(self, config: ModelConfig, model: Model, tokenizer: Tokenizer, template: str,
                 generation: dict[str, Any], name: str = "model"):
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.generation = generation
        self.name = name
        self._cached: list[int] = []  # token ids whose K/V are in the cache, positions 0..len-1
        self._finish = "length"  # why the last generate_ids ended: "stop" (EOS) or "length"
        eos = generation.get("eos_token_ids") or []
        self.eos_ids = {int(i) for i in eos}
        bos_id = generation.get("bos_token_id")
        self._bos = tokenizer.id_to_token(bos_id) if bos_id is not None else ""
        self._eos = tokenizer.id_to_token(min(self.eos_ids)) if self.eos_ids else ""
        self._grammars: Grammars | None = None  # compiled on the first structured request
        self.package_id: str | None = None  # the manifest's (sha256 over the package's files), when loaded from one
        self.prefilled = 0  # prompt tokens the last _prefill actually ran (the rest came from the cache)

    @property
    def context(self) -> int:
        return self.model.context

    # --- text <-> tokens ------------------------------------------------------------------------------------------

    def prompt_ids(self, messages: list[dict[str, str]], tools: list[dict[str, Any]] | None = None) -> list[int]:
        text = chat_template.render(self.template, messages, self._bos or "", self._eos or "", tools=tools)
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def grammars(self) -> Grammars:
        """The compiled-grammar cache for this model's tokenizer (made on first use: it imports xgrammar)."""
        if self._grammars is None:
            from .grammar import vocab_from_tokenizer_json

            vocab = vocab_from_tokenizer_json(json.loads(self.tokenizer.to_str()), self.config.vocab_size)
            self._grammars = Grammars(vocab, sorted(self.eos_ids))
        return self._grammars

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def reset_cache(self) -> None:
        """Forget the KV cache: the next request runs its whole prompt."""
        self._cached = []

    # --- the model --------------------------------------------------------------------------------------------------

    def logits(self, ids: Sequence[int], pos: int = 0, all_logits: bool = False) -> F32:
        """Run ``ids`` at positions pos.. and return logits (the last position's, or all). Updates the cache."""
        out = self.model.forward(ids, pos, all_logits)
        self._cached = self._cached[:pos] + list(ids)
        return out

    def _prefill(self, prompt: list[int], cancelled: Callable[[], bool] | None = None) -> F32:
        """Reuse the cached prefix; run the rest of the prompt in passes of PREFILL_CHUNK tokens, asking
        ``cancelled()`` before each (Cancelled if it says so). Returns the last position's logits."""
        common = 0
        for a, b in zip(self._cached, prompt, strict=False):
            if a != b:
                break
            common += 1
        common = min(common, len(prompt) - 1)  # the last prompt token must run to give logits
        self.prefilled = len(prompt) - common
        for start in range(common, len(prompt), PREFILL_CHUNK):
            if cancelled is not None and cancelled():
                raise Cancelled(f"cancelled after {start - common} of {len(prompt) - common} prompt tokens")
            logits = self.logits(prompt[start:start + PREFILL_CHUNK], start)
        return logits

    def generate_ids(self, prompt: list[int], max_tokens: int, sampler: Sampler) -> Iterator[int]:
        """Yield sampled token ids until EOS (not yielded), ``max_tokens``, or the end of the context."""
        for pick in self.generate_picks(prompt, max_tokens, sampler):
            yield pick.token

    def generate_picks(self, prompt: list[int], max_tokens: int, sampler: Sampler,
                       constraint: Constraint | None = None,
                       cancelled: Callable[[], bool] | None = None) -> Iterator[Pick]:
        """Yield the picked tokens (with their log-probabilities) until EOS (not yielded), ``max_tokens``, the end
        of the context, or a grammar that allows nothing but EOS next (its output is complete). ``cancelled`` is
        asked between prefill chunks (Cancelled); between tokens, the caller simply stops reading."""
        self._finish = "length"
        if not prompt:
            raise InputError("the prompt is empty")
        if len(prompt) >= self.context:
            raise InputError(f"the prompt has {len(prompt)} tokens but the context holds {self.context}; "
                             "shorten the conversation")
        logits = self._prefill(prompt, cancelled)
        pos = len(prompt)
        for n in range(max_tokens):
            pick = sampler.pick(logits, constraint.allowed() if constraint else None)
            if pick.token in self.eos_ids:
                self._finish = "stop"
                return
            if constraint:
                constraint.accept(pick.token)
            yield pick
            if constraint and constraint.finished():
                self._finish = "stop"
                return
            if n + 1 == max_tokens or pos >= self.context:
                return
            logits = self.logits([pick.token], pos)
            pos += 1

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None,
               temperature: float | None = None, top_p: float | None = None, seed: int | None = None,
               stop: Sequence[str] | None = None, decoding: Decoding | None = None,
               tools: list[dict[str, Any]] | None = None,
               cancelled: Callable[[], bool] | None = None) -> Iterator[Chunk]:
        """Chunks of the completion of ``messages``; ``tools`` (OpenAI tool definitions) go to the chat template;
        ``cancelled()`` is asked between prefill chunks (Cancelled is raised if it says so)."""
        gen = self.generation
        d = decoding or Decoding()
        max_tokens = int(gen.get("max_tokens", 512) if max_tokens is None else max_tokens)
        if max_tokens < 1:
            raise InputError(f"max_tokens must be at least 1, got {max_tokens}")
        sampler = Sampler(float(gen.get("temperature", 0.0) if temperature is None else temperature),
                          float(gen.get("top_p", 1.0) if top_p is None else top_p), seed, top_k=d.top_k,
                          min_p=d.min_p, frequency_penalty=d.frequency_penalty, presence_penalty=d.presence_penalty,
                          logit_bias=d.logit_bias, top_logprobs=d.top_logprobs)
        constraint = self.grammars().constraint(d.grammar) if d.grammar else None
        stops = [s for s in (stop or []) if s]
        prompt = self.prompt_ids(messages, tools)
        out: list[int] = []
        sent = 0  # characters of the decoded completion already yielded
        pending: list[Pick] = []  # tokens not yet accounted for in a yielded chunk
        finish = ""
        started = time.perf_counter()
        first = started  # when the first new token was picked (prefill ends there)

        def chunk(text: str, finish_reason: str | None = None, usage: Usage | None = None,
                  timings: Timings | None = None) -> Chunk:
            return Chunk(text, [p.token for p in pending], finish_reason, usage,
                         list(pending) if d.logprobs else [], timings)

        for pick in self.generate_picks(prompt, max_tokens, sampler, constraint, cancelled):
            if not out:
                first = time.perf_counter()
            out.append(pick.token)
            pending.append(pick)
            text = self.decode(out)
            cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
            if cut >= 0:
                yield chunk(text[sent:cut])
                pending, finish = [], "stop"
                break
            if text.endswith("\ufffd"):
                continue  # a multi-byte character is still incomplete
            safe = len(text) - _stop_overlap(text, stops)
            if safe > sent:
                yield chunk(text[sent:safe])
                sent, pending = safe, []
        else:
            finish = self._finish
            tail = self.decode(out)[sent:]
            if tail:
                yield chunk(tail)
                pending = []
        end = time.perf_counter()
        if not out:
            first = end
        timings = Timings(1000 * (first - started), self.prefilled, 1000 * (end - first), len(out))
        yield chunk("", finish, Usage(len(prompt), len(out)), timings)

    def generate(self, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
        text, ids = [], []
        last = Chunk("")
        for last in self.stream(messages, **kwargs):
            text.append(last.text)
            ids.extend(last.token_ids)
        assert last.finish_reason is not None and last.usage is not None
        return Completion("".join(text), ids, last.finish_reason, last.usage)


def engine_from_package(pkg: Package, context: int | None = None, model: Model | None = None,
                        weight_cache_bytes: int = DEFAULT_CACHE_BYTES, kv_f16: bool = False) -> Engine:
    """The engine of a package: on ``model`` when given (its context wins), else on the numpy transformer, which
    keeps the weights as stored and at most ``weight_cache_bytes`` of them dequantized (reference/weights.py), its KV
    cache in f32, or with ``kv_f16`` rounded as the WebGPU engine's f16 cache (forward.py kv_f16)."""
    if model is None:
        tensors = PackageMatrices(pkg)
        weights = Weights.from_tensors(pkg.config, tensors.vector, tensors.matrix, weight_cache_bytes)
        model = NumpyModel(pkg.config, weights, context_for(pkg.config, context), kv_f16)
    tokenizer = Tokenizer.from_file(str(pkg.tokenizer_path))
    engine = Engine(pkg.config, model, tokenizer, pkg.chat_template, pkg.generation, pkg.name)
    engine.package_id = pkg.manifest.get("package_id")
    return engine


def load(package: Path | str, context: int | None = None, verify: bool = False,
         weight_cache_bytes: int = DEFAULT_CACHE_BYTES, kv_f16: bool = False) -> Engine:
    """Load a model package (``verify`` checks every file's sha256 first). The weights stay as stored (about the
    package's size in memory); at most ``weight_cache_bytes`` of dequantized f32 matrices are kept between uses
    (default 1 GiB: all of a model of about 250M parameters). ``kv_f16``: the KV cache keeps keys and values rounded
    as the WebGPU engine's f16 cache does (forward.py kv_f16; to check that engine's greedy ids), else f32."""
    pkg = open_package(package)
    if verify:
        pkg.verify()
    return engine_from_package(pkg, context, weight_cache_bytes=weight_cache_bytes, kv_f16=kv_f16)
