"""attention.wgsl: causal grouped-query attention over the (f16) KV cache, decode (T = 1) and prefill (T > 1)."""

from __future__ import annotations

import numpy as np
import pytest

from model_prep.reference.forward import kv_f16

from .gpu import Gpu
from .kernels import attention_grid, params, tuning
from .reference import EPS32, F64, assert_close, kv_words

SHADER = "attention.wgsl"
WG = tuning(SHADER)["WG"]  # as the engine compiles it (webgpu_shaders/kernels.json)


def attention_ref(q: F64, k_cache: F64, v_cache: F64, positions: np.ndarray, scale: float) -> tuple[F64, F64]:
    """q: [T, H, d], caches: [G, capacity, d] -> (out [T, H, d], max |score| per [T, H, 1])."""
    tokens, heads, _ = q.shape
    group = heads // k_cache.shape[0]
    out = np.empty_like(q)
    smax = np.empty((tokens, heads, 1))
    for t in range(tokens):
        for h in range(heads):
            keys = k_cache[h // group, : positions[t] + 1]
            s = scale * keys @ q[t, h]
            p = np.exp(s - s.max())
            out[t, h] = (p / p.sum()) @ v_cache[h // group, : positions[t] + 1]
            smax[t, h] = np.abs(s).max()
    return out, smax


@pytest.mark.parametrize("heads,kv_heads,d,positions,wg", [
    (9, 3, 64, [0], WG),                  # the engine's workgroup: decode, first token: one key
    (9, 3, 64, [150], WG),                # decode over 151 keys: several blocks, the last partial
    (4, 2, 128, [77], WG),                # head_dim 128: two output dims per thread (WG 64)
    (9, 3, 64, [10, 11, 12, 13, 14, 15, 16], WG),  # prefill of 7 tokens after a 10-token prefix, causal
    (9, 3, 64, [150], 64),                # 3 blocks of 64, the last partial
    (6, 6, 64, [0, 1, 2], 32),            # no grouping, smaller workgroup
    (8, 1, 128, [40, 41, 42, 43, 44], 16),  # one kv head, 8 dims per thread
])
def test_attention(gpu: Gpu, rng: np.random.Generator, heads: int, kv_heads: int, d: int, positions: list[int],
                   wg: int) -> None:
    pos = np.array(positions, np.uint32)
    tokens, capacity = len(pos), 160
    scale = 1.0 / np.sqrt(d)
    q = (rng.standard_normal((tokens, heads, d)) * 2.0).astype(np.float32)
    # the whole cache is filled: keys past a token's position must be ignored, not merely be zero
    # (values an f16 cache holds: kv_f16.wgsl; the kernel reads its words, the reference their values)
    k_cache = kv_f16((rng.standard_normal((kv_heads, capacity, d)) * 2.0).astype(np.float32))
    v_cache = kv_f16(rng.standard_normal((kv_heads, capacity, d)).astype(np.float32))
    out = gpu.zeros(q.nbytes)
    p = gpu.uniform(params(SHADER, num_heads=heads, num_kv_heads=kv_heads, head_dim=d, capacity=capacity,
                           scale=scale))
    gpu.run(gpu.pipeline(SHADER, "main", {"WG": wg}),
            [gpu.storage(pos), gpu.storage(q), gpu.storage(kv_words(k_cache)), gpu.storage(kv_words(v_cache)), out, p],
            attention_grid(heads, tokens))
    want, smax = attention_ref(q.astype(np.float64), k_cache.astype(np.float64), v_cache.astype(np.float64), pos,
                               scale)
    # Scores: f32 dot products of d terms, off by ~eps sqrt(d) |q||k| scale; an error e in a score scales its weight
    # by (1 + e), and exp itself is good to ~(1 + |s|) ulps. The weighted sum of up to n = pos + 1 values rounds by
    # ~eps sqrt(n). All of it bounded relative to the largest |v| of the head.
    n = pos.astype(np.float64)[:, None, None] + 1.0
    vmax = np.abs(v_cache).max()
    score_err = 4.0 * EPS32 * np.sqrt(d) * smax + 16.0 * EPS32 * (1.0 + smax)
    tol = vmax * (2.0 * score_err + 4.0 * EPS32 * np.sqrt(n))
    assert_close(gpu.read(out).reshape(q.shape), want, tol, f"attention {heads}/{kv_heads}x{d} at {positions}")
