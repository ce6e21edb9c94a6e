"""RoPE frequencies: the plain ones, Llama 3.x's "llama3" scaling and Phi-3's "longrope", as per-frequency divisors.

A package stores the scaling as ``config.rope_freq_factors``: one divisor per frequency i (D/2 of them), the form
llama.cpp keeps in a GGUF's ``rope_freqs.weight``. The engines rotate pair i by ``pos * inv_freq[i]`` with
``inv_freq[i] = 1 / (theta ** (2i / D) * factor[i])`` (app/engine/gpu/rope.js computes the same in JS). Longrope
also scales cos and sin by an attention factor: ``config.rope_attn_factor`` (``cos_sin`` here, ``ropeCosSin`` in JS).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

# The llama3 parameters (transformers' rope_parameters / rope_scaling keys) and what each one is.
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def inv_freq(theta: float, head_dim: int, factors: Sequence[float] | None = None) -> npt.NDArray[np.float64]:
    """[D/2] inverse frequencies (radians per position), float64."""
    base = 1.0 / (theta ** (np.arange(head_dim // 2, dtype=np.float64) * 2 / head_dim))
    return base if factors is None else base / np.asarray(factors, dtype=np.float64)


def cos_sin(theta: float, head_dim: int, factors: Sequence[float] | None, attn_factor: float | None,
            context: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The RoPE tables [context, D/2]: cos and sin of ``pos * inv_freq[i]`` times ``attn_factor`` (1 where None),
    computed in float64 and rounded to f32 once (as every engine's table)."""
    angles = np.arange(context, dtype=np.float64)[:, None] * inv_freq(theta, head_dim, factors)[None, :]
    scale = 1.0 if attn_factor is None else float(attn_factor)
    return (np.cos(angles) * scale).astype(np.float32), (np.sin(angles) * scale).astype(np.float32)


# Phi-3's "longrope" ("su") parameters: what transformers' _compute_longrope_parameters reads
LONGROPE_KEYS = ("short_factor", "long_factor", "original_max_position_embeddings", "factor", "attention_factor")


def longrope_attention_factor(max_position_embeddings: int, original_max_position_embeddings: int,
                              factor: float | None = None, attention_factor: float | None = None) -> float:
    """transformers' _compute_longrope_parameters: ``attention_factor`` where given, else
    sqrt(1 + ln(factor) / ln(original)) with factor = max_position_embeddings / original where not given (1 where
    factor <= 1). It scales cos and sin, so q.k by its square, whichever of short/long factors is in use."""
    if attention_factor is not None:
        return float(attention_factor)
    if factor is None:
        factor = max_position_embeddings / original_max_position_embeddings
    return 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original_max_position_embeddings))


def llama3_factors(theta: float, head_dim: int, factor: float, low_freq_factor: float, high_freq_factor: float,
                   original_max_position_embeddings: int) -> list[float]:
    """The divisor of each frequency under "llama3" scaling (transformers' _compute_llama3_parameters; llama.cpp's
    converter writes the same numbers into rope_freqs.weight): 1 for short wavelengths, ``factor`` for long ones,
    and a smooth blend between ``original / high_freq_factor`` and ``original / low_freq_factor``."""
    if not (factor > 0 and high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0):
        raise ValueError(f"llama3 RoPE parameters are inconsistent: factor {factor}, low_freq_factor "
                         f"{low_freq_factor}, high_freq_factor {high_freq_factor}, original_max_position_embeddings "
                         f"{original_max_position_embeddings}")
    old = float(original_max_position_embeddings)
    low_freq_wavelen, high_freq_wavelen = old / low_freq_factor, old / high_freq_factor
    out = []
    for f in inv_freq(theta, head_dim):
        wavelen = 2 * math.pi / float(f)
        if wavelen < high_freq_wavelen:
            out.append(1.0)
        elif wavelen > low_freq_wavelen:
            out.append(float(factor))
        else:
            smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return out
