"""attention_prefill.wgsl: causal grouped-query attention of a prefill pass, blocks of queries against blocks of the
KV cache (online softmax), against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import attention_prefill_grid, params, tuning
from .reference import EPS32, assert_close
from .test_attention import attention_ref

SHADER = "attention_prefill.wgsl"
ENGINE = tuning(SHADER)  # {BQ, BK} as the engine compiles it (webgpu_shaders/kernels.json)


@pytest.mark.parametrize("heads,kv_heads,d,start,tokens,bq,bk", [
    (9, 3, 64, 0, 37, ENGINE["BQ"], ENGINE["BK"]),    # SmolLM2's heads, a first pass: the last query block partial
    (12, 2, 128, 10, 21, ENGINE["BQ"], ENGINE["BK"]),  # Qwen2.5's heads after a 10-token prefix
    (4, 4, 128, 150, 3, ENGINE["BQ"], ENGINE["BK"]),   # a short pass deep in the cache, no grouping
    (8, 1, 32, 5, 19, 8, 16),                           # other blocks: 8 queries x 16 positions
    (6, 2, 8, 0, 9, 4, 4),                              # tiny heads
])
def test_attention_prefill(gpu: Gpu, rng: np.random.Generator, heads: int, kv_heads: int, d: int, start: int,
                           tokens: int, bq: int, bk: int) -> None:
    pos = np.arange(start, start + tokens, dtype=np.uint32)
    capacity = 160
    scale = 1.0 / np.sqrt(d)
    q = (rng.standard_normal((tokens, heads, d)) * 2.0).astype(np.float32)
    # the whole cache is filled: keys past a token's position must be ignored, not merely be zero
    k_cache = (rng.standard_normal((kv_heads, capacity, d)) * 2.0).astype(np.float32)
    v_cache = rng.standard_normal((kv_heads, capacity, d)).astype(np.float32)
    sentinel = np.full(tokens * heads * d + 64, -7.25, np.float32)
    out = gpu.storage(sentinel)
    p = gpu.uniform(params(SHADER, num_heads=heads, num_kv_heads=kv_heads, head_dim=d, capacity=capacity,
                           tokens=tokens, scale=scale))
    gpu.run(gpu.pipeline(SHADER, "main", {"BQ": bq, "BK": bk}),
            [gpu.storage(pos), gpu.storage(q), gpu.storage(k_cache), gpu.storage(v_cache), out, p],
            attention_prefill_grid(heads, tokens, bq))
    want, smax = attention_ref(q.astype(np.float64), k_cache.astype(np.float64), v_cache.astype(np.float64), pos,
                               scale)
    # as test_attention: score errors ~eps sqrt(d) |s|, exp good to ~(1 + |s|) ulps, sums of n values ~eps sqrt(n)
    n = pos.astype(np.float64)[:, None, None] + 1.0
    vmax = np.abs(v_cache).max()
    score_err = 4.0 * EPS32 * np.sqrt(d) * smax + 16.0 * EPS32 * (1.0 + smax)
    tol = vmax * (2.0 * score_err + 4.0 * EPS32 * np.sqrt(n))
    got = gpu.read(out)
    assert_close(got[:tokens * heads * d].reshape(q.shape), want, tol, f"prefill {heads}/{kv_heads}x{d} at {start}")
    assert np.all(got[tokens * heads * d:] == -7.25), "wrote past the pass's tokens"
