"""Choosing the next token, the same way in every engine (app/engine/sampler.js mirrors this file).

The logits go through these steps, in this order (as llama.cpp's and vLLM's samplers do):

1. ``logit_bias`` is added (OpenAI: token id -> -100..100), then the penalties for tokens already generated in this
   completion: ``frequency_penalty`` times how often the token came, plus ``presence_penalty`` once it came at all.
2. The grammar's mask (if any): tokens it does not allow get -inf.
   The log-probability reported for a token (``logprobs``) is taken here: log softmax of these processed logits,
   before temperature. With no bias, penalty or grammar, that is the model's own distribution.
3. Greedy (temperature 0): the largest, ties to the lowest id (as the GPU argmax).
   Otherwise softmax(logits / temperature), then ``top_k`` (keep the k most likely; 0 = all), then ``top_p`` (the
   smallest most-likely-first prefix whose mass reaches top_p), then ``min_p`` (drop tokens below min_p times the
   most likely one's probability), renormalized, one seeded draw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..errors import InputError

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Pick:
    token: int
    logprob: float  # of the token under step 2's distribution
    top: list[tuple[int, float]] = field(default_factory=list)  # the ``top_logprobs`` most likely (id, logprob)


class Sampler:
    """Deterministic for a given seed: the same logits and seed give the same tokens."""

    def __init__(self, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None, *, top_k: int = 0,
                 min_p: float = 0.0, frequency_penalty: float = 0.0, presence_penalty: float = 0.0,
                 logit_bias: Mapping[int, float] | None = None, top_logprobs: int = 0):
        if not temperature >= 0:
            raise InputError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {top_p}")
        if not (isinstance(top_k, int) and top_k >= 0):
            raise InputError(f"top_k must be an integer >= 0 (0 = no limit), got {top_k}")
        if not 0 <= min_p <= 1:
            raise InputError(f"min_p must be in [0, 1], got {min_p}")
        for name, v in (("frequency_penalty", frequency_penalty), ("presence_penalty", presence_penalty)):
            if not -2 <= v <= 2:
                raise InputError(f"{name} must be in [-2, 2], got {v}")
        if not 0 <= top_logprobs <= 20:
            raise InputError(f"top_logprobs must be in [0, 20], got {top_logprobs}")
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.min_p = min_p
        self.frequency_penalty = frequency_penalty
        self.presence_penalty = presence_penalty
        self.logit_bias = dict(logit_bias or {})
        self.top_logprobs = top_logprobs
        self.rng = np.random.default_rng(seed)
        self.counts: dict[int, int] = {}  # token -> times generated in this completion (for the penalties)

    def __call__(self, logits: F32) -> int:
        return self.pick(logits).token

    def pick(self, logits: F32, allowed: npt.NDArray[np.bool_] | None = None) -> Pick:
        z = self._process(logits, allowed)
        if self.temperature == 0:
            token = int(np.argmax(z))  # ties -> lowest id, as the GPU argmax does
        else:
            token = self._draw(z)
        self.counts[token] = self.counts.get(token, 0) + 1
        lse = _logsumexp(z)
        top: list[tuple[int, float]] = []
        if self.top_logprobs:
            order = np.argsort(-z, kind="stable")[: self.top_logprobs]
            top = [(int(i), float(z[i] - lse)) for i in order if np.isfinite(z[i])]
        return Pick(token, float(z[token] - lse), top)

    def _process(self, logits: F32, allowed: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.float64]:
        """Steps 1 and 2, in f64."""
        z = logits.astype(np.float64)
        for token, bias in self.logit_bias.items():
            if 0 <= token < z.size:
                z[token] += bias
        if self.counts and (self.frequency_penalty or self.presence_penalty):
            ids = np.fromiter(self.counts.keys(), np.int64, len(self.counts))
            n = np.fromiter(self.counts.values(), np.float64, len(self.counts))
            z[ids] -= self.frequency_penalty * n + self.presence_penalty
        if allowed is not None:
            if not allowed.any():
                raise RuntimeError("the grammar allows no token here")
            z[~allowed] = -np.inf
        return z

    def _draw(self, z: npt.NDArray[np.float64]) -> int:
        p = np.exp((z - z.max()) / self.temperature)  # unnormalized; the top one is 1, masked ones 0
        order = np.argsort(-p, kind="stable")  # most likely first, ties by id
        sorted_p = p[order]
        keep = int(np.count_nonzero(sorted_p))
        if self.top_k:
            keep = min(keep, self.top_k)
        cum = np.cumsum(sorted_p[:keep])
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        keep = min(keep, int(np.searchsorted(cum, self.top_p * cum[-1], side="left")) + 1)
        if self.min_p > 0:
            keep = max(1, min(keep, int(np.count_nonzero(sorted_p[:keep] >= self.min_p * sorted_p[0]))))
        kept = sorted_p[:keep] / cum[keep - 1]
        choice = int(np.searchsorted(np.cumsum(kept), self.rng.random(), side="right"))
        return int(order[min(choice, keep - 1)])


def _logsumexp(z: npt.NDArray[np.float64]) -> float:
    m = float(z.max())
    return m + float(np.log(np.exp(z - m).sum()))
