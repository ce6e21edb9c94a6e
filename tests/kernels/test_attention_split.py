"""attention_split.wgsl + attention_combine.wgsl: decode attention spread over splits of the cache, then merged;
with the new token's bias, RoPE and KV-cache write (f16, kv_f16.wgsl) folded in."""

from __future__ import annotations

import numpy as np
import pytest

from model_prep.reference.forward import kv_f16

from .gpu import Gpu
from .kernels import (
    attention_combine_grid,
    attention_split_grid,
    attention_split_shape,
    attention_splits,
    params,
    tuning,
)
from .reference import EPS32, assert_close, assert_kv_rounds, kv_values, kv_words
from .test_attention import attention_ref
from .test_rope_table import rope_ref, table

SPLIT = "attention_split.wgsl"
COMBINE = "attention_combine.wgsl"
# as the engine compiles them (webgpu_shaders/kernels.json caps; the shape by heads, grids.js attentionSplitShape)
SPLIT_CAP = tuning(SPLIT)
COMBINE_WG, COMBINE_CG = tuning(COMBINE)["WG"], tuning(COMBINE)["CG"]
SENTINEL = -7.25


def engine(heads: int, kv_heads: int, d: int) -> tuple[int, int, int]:
    """(GROUP, SPLIT, TP) as the engine picks them for these heads."""
    shape = attention_split_shape(d, heads, kv_heads, SPLIT_CAP)
    return shape["GROUP"], shape["SPLIT"], shape["TP"]


@pytest.mark.parametrize("heads,kv_heads,d,pos,capacity,group,split,tp,half", [
    (9, 3, 64, 0, 160, 1, 32, 2, False),      # first token: one key, the new one
    (9, 3, 64, 150, 160, 1, 64, 1, False),    # 151 keys, one thread per position: 3 splits, the last partial
    (9, 3, 64, 150, 160, 3, 32, 2, False),    # a kv head's three query heads per workgroup: 5 splits
    (9, 3, 64, 127, 160, 3, 32, 2, True),     # the new key is the last of a full split
    (9, 3, 64, 128, 160, 3, 32, 1, False),    # ... the first of a new split
    (4, 2, 128, 77, 96, 2, 16, 4, True),      # head_dim 128, two heads x four threads per position: 2 slices
    (8, 1, 128, 299, 300, 8, 32, 1, False),   # eight heads of one kv head (WG 256); 10 splits, the last position
    (8, 1, 128, 299, 300, 1, 32, 1, False),   # the same, a head per workgroup (WG 32 = d/4: one slice)
    (6, 6, 8, 45, 50, 1, 8, 2, True),         # no grouping, tiny heads: 2 threads per position, 8 slices
    (2, 1, 256, 1100, 1200, 2, 8, 8, False),  # long KV (150 splits), d = 256, 8 threads per pair
    (2, 2, 256, 40, 64, 1, 16, 1, True),      # d/4 = 64 columns > WG 16: four columns per thread
    (4, 1, 256, 40, 64, 4, 8, 1, True),       # four heads' 256 columns on 32 threads
    (3, 1, 12, 70, 80, 1, 2, 2, False),       # odd sizes: d/4 = 3 columns, 36 splits
    (3, 1, 12, 70, 80, 3, 2, 8, False),       # 8 threads per pair, more than d/4 = 3 (some idle)
    (12, 2, 128, 1900, 2048, 6, 32, 1, True),  # Qwen2.5-1.5B's heads at a long KV: 60 splits to merge
    (12, 2, 128, 1900, 2048, 3, 16, 4, True),  # half a kv head's query heads per workgroup (GROUP 3 of 6)
    (16, 2, 128, 1983, 4096, 1, 64, 4, True),  # one head, 64 positions per workgroup (256 threads) at KV 1,984
    (16, 2, 128, 1983, 4096, 1, 32, 8, True),  # one head, 32 positions per workgroup (256 threads)
    # the engine's choices: Qwen2.5-3B (16 / 2 heads), Qwen2.5-1.5B (12 / 2), SmolLM2 (9 / 3)
    (16, 2, 128, 383, 392, *engine(16, 2, 128), True),
    (12, 2, 128, 383, 392, *engine(12, 2, 128), True),
    (9, 3, 64, 300, 392, *engine(9, 3, 64), False),
])
# the engine's combine; fewer threads than columns or splits, three workgroups per head; and the split's keys and values
# loaded early (EARLY: taken where its registers suffice, the plain path elsewhere; the same results either way)
@pytest.mark.parametrize("combine_wg,combine_cg,early", [(COMBINE_WG, COMBINE_CG, False), (8, 3, False),
                                                         (COMBINE_WG, COMBINE_CG, True)])
def test_attention_split(gpu: Gpu, rng: np.random.Generator, heads: int, kv_heads: int, d: int, pos: int,
                         capacity: int, group: int, split: int, tp: int, half: bool, combine_wg: int,
                         combine_cg: int, early: bool) -> None:
    n_all = heads + 2 * kv_heads
    scale = 1.0 / np.sqrt(d)
    cs = table(capacity, d, 10000.0)
    qkv = (rng.standard_normal(n_all * d) * 2.0).astype(np.float32)
    bias = (rng.standard_normal(n_all * d) * 0.5).astype(np.float32)
    # the cache holds earlier tokens below pos (rotated keys) and junk from elsewhere above: never read; as f16
    k_cache = kv_f16((rng.standard_normal((kv_heads, capacity, d)) * 2.0).astype(np.float32))
    v_cache = kv_f16(rng.standard_normal((kv_heads, capacity, d)).astype(np.float32))
    k_cache[:, pos:] = SENTINEL
    v_cache[:, pos:] = SENTINEL
    shape = {"GROUP": group, "SPLIT": split, "TP": tp, "D4": d // 4}
    splits = attention_splits(capacity, split)
    part = gpu.zeros(4 * heads * splits * (d + 4))
    k_words, v_words = kv_words(k_cache), kv_words(v_cache)  # u32[kv_heads, capacity, d / 2]
    k_buf, v_buf = gpu.storage(k_words), gpu.storage(v_words)
    positions = gpu.storage(np.array([pos], np.uint32))
    p = gpu.uniform(params(SPLIT, num_heads=heads, num_kv_heads=kv_heads, head_dim=d, capacity=capacity,
                           splits=splits, scale=scale))
    gpu.run(gpu.pipeline(SPLIT, "main", {**shape, "HALF": half, "EARLY": early}),
            [positions, gpu.storage(cs), gpu.storage(qkv), gpu.storage(bias), k_buf, v_buf, part, p],
            attention_split_grid(heads, capacity, shape))
    out = gpu.zeros(4 * heads * d)
    pc = gpu.uniform(params(COMBINE, num_heads=heads, head_dim=d, capacity=capacity, splits=splits,
                            split_positions=split))
    gpu.run(gpu.pipeline(COMBINE, "main", {"WG": combine_wg, "CG": combine_cg}), [positions, part, out, pc],
            attention_combine_grid(heads, combine_cg))

    # reference: bias, RoPE (rope_table.wgsl's arithmetic), cache write, then plain softmax attention
    x = qkv.astype(np.float32) + bias
    q = x[: heads * d].reshape(1, heads, d)
    k = x[heads * d: (heads + kv_heads) * d].reshape(1, kv_heads, d)
    v = x[(heads + kv_heads) * d:].reshape(kv_heads, d)
    at = np.array([pos])
    k_rot = rope_ref(k, cs, at, half)[0]
    q_rot = rope_ref(q, cs, at, half)
    got_k = gpu.read(k_buf, np.uint32).reshape(k_words.shape)
    got_v = gpu.read(v_buf, np.uint32).reshape(v_words.shape)
    # the new key: the f16 of its f32 rotation (within a few eps of it); the new value: exactly kv_f16(v)
    k_new = kv_values(got_k[:, pos])
    assert_kv_rounds(k_new, k_rot, 4 * EPS32 * np.abs(k).max(axis=-1)[0][:, None], "k cache at pos")
    np.testing.assert_array_equal(got_v[:, pos], kv_words(v))
    np.testing.assert_array_equal(got_k[:, :pos], k_words[:, :pos])  # nothing else written
    np.testing.assert_array_equal(got_k[:, pos + 1:], k_words[:, pos + 1:])
    np.testing.assert_array_equal(got_v[:, pos + 1:], v_words[:, pos + 1:])

    # the kernel attends to the new key and value as cached (so a later step, reading them back, agrees)
    full_k = k_cache.astype(np.float64)
    full_v = v_cache.astype(np.float64)
    full_k[:, pos] = k_new
    full_v[:, pos] = kv_f16(v)
    want, smax = attention_ref(q_rot, full_k, full_v, at, scale)
    # as test_attention.py (scores f32 dots of d terms, exp, sums of n = pos + 1 values), plus the rotation's
    # rounding (a few eps of |q| |k|) and the merge of the splits (a few more roundings per value)
    vmax = np.abs(full_v[:, : pos + 1]).max()
    score_err = 4.0 * EPS32 * np.sqrt(d) * smax + 16.0 * EPS32 * (1.0 + smax)
    tol = vmax * (2.0 * score_err + 4.0 * EPS32 * np.sqrt(pos + 1.0) + 8.0 * EPS32 * splits)
    assert_close(gpu.read(out).reshape(1, heads, d), want, tol, f"attention split {heads}/{kv_heads}x{d} at {pos}")
