"""attention_prefill.wgsl: causal grouped-query attention of a prefill pass, blocks of queries against blocks of the
(f16) KV cache (online softmax), against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from model_prep.reference.forward import kv_f16

from .gpu import Gpu
from .kernels import (
    attention_prefill_combine_grid,
    attention_prefill_grid,
    attention_prefill_splits,
    params,
    tuning,
)
from .reference import EPS32, assert_close, kv_words
from .test_attention import attention_ref

SHADER = "attention_prefill.wgsl"
COMBINE = "attention_prefill_combine.wgsl"
ENGINE = tuning(SHADER)  # {BQ, BK, SPLIT} as the engine compiles it (webgpu_shaders/kernels.json)
COMBINE_WG = tuning(COMBINE)["WG"]


def run_prefill(gpu: Gpu, q: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, pos: np.ndarray, scale: float,
                bq: int, bk: int, split: int, max_splits: int, window: int = 0,
                out_init: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """attention_prefill.wgsl over the pass's splits, then attention_prefill_combine.wgsl when it takes several, as
    ops.js PrefillOps.attend dispatches them; the part buffer starts as NaN (nothing stale may be read). k_cache and
    v_cache: [kv_heads, capacity, d] values, stored as the f16 cache's words (rounded: pass kv_f16 values to compare
    against them). Returns the output buffer's values (out_init's length) and the pass's splits."""
    tokens, heads, d = q.shape
    kv_heads, capacity, _ = k_cache.shape
    splits = attention_prefill_splits(int(pos[-1]) + 1, split, max_splits)
    out = gpu.storage(out_init if out_init is not None else np.zeros(q.size, np.float32))
    part = gpu.storage(np.full(tokens * heads * max_splits * (d + 4), np.nan, np.float32))
    positions = gpu.storage(pos)
    p = gpu.uniform(params(SHADER, num_heads=heads, num_kv_heads=kv_heads, head_dim=d, capacity=capacity,
                           tokens=tokens, splits=max_splits, scale=scale))
    gpu.run(gpu.pipeline(SHADER, "main", {"BQ": bq, "BK": bk, "SPLIT": split, "WINDOW": window}),
            [positions, gpu.storage(q), gpu.storage(kv_words(k_cache)), gpu.storage(kv_words(v_cache)), out, part, p],
            attention_prefill_grid(heads, tokens, bq, splits))
    if splits > 1:
        pc = gpu.uniform(params(COMBINE, num_heads=heads, head_dim=d, tokens=tokens, splits=max_splits,
                                split_positions=split))
        gpu.run(gpu.pipeline(COMBINE, "main", {"WG": COMBINE_WG}), [positions, part, out, pc],
                attention_prefill_combine_grid(tokens, heads, d, COMBINE_WG))
    return gpu.read(out), splits


@pytest.mark.parametrize("heads,kv_heads,d,start,tokens,bq,bk,split,max_splits,want_splits", [
    (9, 3, 64, 0, 37, ENGINE["BQ"], ENGINE["BK"], ENGINE["SPLIT"], 16, 1),  # SmolLM2's heads, a first pass: the last
    #                                                                           query block partial, one split
    (12, 2, 128, 10, 21, ENGINE["BQ"], ENGINE["BK"], ENGINE["SPLIT"], 16, 1),  # Qwen2.5's heads after a prefix
    (4, 4, 128, 150, 3, ENGINE["BQ"], ENGINE["BK"], ENGINE["SPLIT"], 16, 3),  # a short pass deep in the cache
    (8, 1, 32, 5, 19, 8, 16, 16, 16, 2),                  # other blocks: 8 queries x 16 positions
    (6, 2, 8, 0, 9, 4, 4, 4, 16, 3),                      # tiny heads, splits of one block
    (9, 3, 64, 600, 60, ENGINE["BQ"], ENGINE["BK"], ENGINE["SPLIT"], 16, 11),  # issue 10: 60 new tokens after a
    #                                                                             600-token prefix (SmolLM2)
    (12, 2, 128, 600, 60, ENGINE["BQ"], ENGINE["BK"], ENGINE["SPLIT"], 16, 11),  # the same at head_dim 128
    (9, 3, 64, 300, 37, ENGINE["BQ"], ENGINE["BK"], 16, 5, 5),  # capped splits: 68 -> 72 positions each, blocks
    #                                                             cut across splits, the last query block partial
    (4, 2, 64, 40, 90, ENGINE["BQ"], ENGINE["BK"], 32, 16, 5),  # a long pass: early blocks see few of the splits
])
def test_attention_prefill(gpu: Gpu, rng: np.random.Generator, heads: int, kv_heads: int, d: int, start: int,
                           tokens: int, bq: int, bk: int, split: int, max_splits: int, want_splits: int) -> None:
    pos = np.arange(start, start + tokens, dtype=np.uint32)
    capacity = start + tokens + 40
    scale = 1.0 / np.sqrt(d)
    q = (rng.standard_normal((tokens, heads, d)) * 2.0).astype(np.float32)
    # the whole cache is filled: keys past a token's position must be ignored, not merely be zero
    k_cache = kv_f16((rng.standard_normal((kv_heads, capacity, d)) * 2.0).astype(np.float32))  # as an f16 cache holds
    v_cache = kv_f16(rng.standard_normal((kv_heads, capacity, d)).astype(np.float32))
    sentinel = np.full(tokens * heads * d + 64, -7.25, np.float32)
    got, splits = run_prefill(gpu, q, k_cache, v_cache, pos, scale, bq, bk, split, max_splits, out_init=sentinel)
    assert splits == want_splits
    want, smax = attention_ref(q.astype(np.float64), k_cache.astype(np.float64), v_cache.astype(np.float64), pos,
                               scale)
    # as test_attention: score errors ~eps sqrt(d) |s|, exp good to ~(1 + |s|) ulps, sums of n values ~eps sqrt(n),
    # and the merge of the splits a few roundings per split
    n = pos.astype(np.float64)[:, None, None] + 1.0
    vmax = np.abs(v_cache).max()
    score_err = 4.0 * EPS32 * np.sqrt(d) * smax + 16.0 * EPS32 * (1.0 + smax)
    tol = vmax * (2.0 * score_err + 4.0 * EPS32 * np.sqrt(n) + 8.0 * EPS32 * splits)
    assert_close(got[:tokens * heads * d].reshape(q.shape), want, tol,
                 f"prefill {heads}/{kv_heads}x{d} at {start}, {splits} splits")
    assert np.all(got[tokens * heads * d:] == -7.25), "wrote past the pass's tokens"
