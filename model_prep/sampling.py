"""Choosing the next token: greedy (temperature 0) or seeded temperature + top-p (nucleus) sampling."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .errors import InputError


class Sampler:
    """Deterministic for a given seed: the same logits and seed give the same tokens."""

    def __init__(self, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None):
        if not temperature >= 0:
            raise InputError(f"temperature must be >= 0, got {temperature}")
        if not 0 < top_p <= 1:
            raise InputError(f"top_p must be in (0, 1], got {top_p}")
        self.temperature = temperature
        self.top_p = top_p
        self.rng = np.random.default_rng(seed)

    def __call__(self, logits: npt.NDArray[np.float32]) -> int:
        if self.temperature == 0:
            return int(np.argmax(logits))  # ties -> lowest id, as the GPU argmax does
        z = logits.astype(np.float64) / self.temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        order = np.argsort(-p, kind="stable")  # most likely first, ties by id
        sorted_p = p[order]
        cum = np.cumsum(sorted_p)
        # keep the smallest prefix whose mass reaches top_p (always at least one token)
        keep = int(np.searchsorted(cum, self.top_p * cum[-1], side="left")) + 1
        kept = sorted_p[:keep] / cum[keep - 1]
        choice = int(np.searchsorted(np.cumsum(kept), self.rng.random(), side="right"))
        return int(order[min(choice, keep - 1)])
