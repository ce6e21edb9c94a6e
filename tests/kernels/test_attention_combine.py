"""attention_combine.wgsl alone: the online-softmax merge of per-split partials (o_c, m_c, l_c) into each head's
output, against numpy on partials built here (test_attention_split.py checks the two kernels together)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import attention_combine_grid, params, tuning
from .reference import assert_close

COMBINE = "attention_combine.wgsl"
COMBINE_WG, COMBINE_CG = tuning(COMBINE)["WG"], tuning(COMBINE)["CG"]  # as the engine compiles it (kernels.json)


@pytest.mark.parametrize("heads,d,pos,split,splits", [
    (9, 64, 0, 32, 13),       # one split in use (the first token): out = o_0 / l_0
    (9, 64, 300, 32, 13),     # 10 splits in use of 13 allocated: the rest hold junk that must not be read
    (12, 128, 1900, 16, 128),  # 119 splits: more splits than threads
    (3, 12, 70, 2, 40),       # d/4 = 3 columns: odd sizes
    (2, 256, 40, 16, 4),      # d/4 = 64 columns
])
@pytest.mark.parametrize("wg,cg", [
    (COMBINE_WG, COMBINE_CG),  # the engine's
    (8, 1),                    # fewer threads than columns or splits
    (128, 8),                  # eight workgroups per head (d/4 = 3: five of them have no column)
    (32, 5),                   # groups that do not divide the columns: the last has fewer, or none
])
def test_combine_merges_splits(gpu: Gpu, rng: np.random.Generator, heads: int, d: int, pos: int, split: int,
                               splits: int, wg: int, cg: int) -> None:
    used = math.ceil((pos + 1) / split)
    # what attention_split.wgsl writes per (head, split): o = sum_j exp(s_j - m) v_j, m = max_j s_j, l = sum exp(..)
    o = rng.standard_normal((heads, splits, d)).astype(np.float32)
    m = (rng.standard_normal((heads, splits)) * 4.0).astype(np.float32)
    l_ = rng.uniform(0.5, 20.0, (heads, splits)).astype(np.float32)
    o[:, used:] = np.nan  # junk past the splits the position uses
    m[:, used:] = 1e30
    ml = np.zeros((heads, splits, 4), np.float32)
    ml[..., 0], ml[..., 1] = m, l_
    part = np.concatenate([o.reshape(-1), ml.reshape(-1)])
    out = gpu.zeros(4 * heads * d)
    p = gpu.uniform(params(COMBINE, num_heads=heads, head_dim=d, capacity=splits * split, splits=splits,
                           split_positions=split))
    gpu.run(gpu.pipeline(COMBINE, "main", {"WG": wg, "CG": cg}),
            [gpu.storage(np.array([pos], np.uint32)), gpu.storage(part), out, p], attention_combine_grid(heads, cg))

    mu, lu, ou = m[:, :used].astype(np.float64), l_[:, :used].astype(np.float64), o[:, :used].astype(np.float64)
    w = np.exp(mu - mu.max(axis=1, keepdims=True))
    want = (w[..., None] * ou).sum(axis=1) / (w * lu).sum(axis=1, keepdims=True)
    assert_close(gpu.read(out).reshape(heads, d), want, 1e-5 * np.abs(want) + 1e-6, "combined attention output")
