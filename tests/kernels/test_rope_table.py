"""rope_table.wgsl: RoPE from a host (cos, sin) table, as reference/forward.py RunState builds it; both layouts; the
new keys and values into the f16 KV cache (kv_f16.wgsl), rounded as forward.py kv_f16."""

from __future__ import annotations

import numpy as np
import pytest

from model_prep.reference.forward import kv_f16

from .gpu import Gpu
from .kernels import PARAMS as LAYOUTS
from .kernels import rope_grid, tuning
from .reference import EPS32, assert_close, assert_kv_rounds, kv_values, kv_words

SHADER = "rope_table.wgsl"
SENTINEL = -7.25
PARAMS = LAYOUTS[SHADER]
ENGINE = tuning(SHADER)  # {WG} as the engine compiles it (webgpu_shaders/kernels.json)


def table(capacity: int, d: int, theta: float) -> np.ndarray:
    """[capacity, d/2, 2] f32 (cos, sin), computed as the reference engine's RunState (float64 angles)."""
    inv_freq = 1.0 / (theta ** (np.arange(d // 2, dtype=np.float64) * 2 / d))
    angles = np.arange(capacity, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.stack([np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)], axis=-1)


def rope_ref(x: np.ndarray, cs: np.ndarray, pos: np.ndarray, half: bool) -> np.ndarray:
    """x: [T, heads, d] f32 rotated with the table's f32 values (float64 arithmetic)."""
    d = x.shape[-1]
    c = cs[pos, :, 0].astype(np.float64)[:, None, :]
    s = cs[pos, :, 1].astype(np.float64)[:, None, :]
    x = x.astype(np.float64)
    a, b = (x[..., : d // 2], x[..., d // 2:]) if half else (x[..., 0::2], x[..., 1::2])
    out = np.empty_like(x)
    ra, rb = a * c - b * s, b * c + a * s
    if half:
        out[..., : d // 2], out[..., d // 2:] = ra, rb
    else:
        out[..., 0::2], out[..., 1::2] = ra, rb
    return out


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("heads,kv_heads,d,positions", [
    (9, 3, 64, [17]),
    (9, 3, 64, [5, 6, 7, 8, 9]),
    (4, 2, 128, [0, 1, 2]),
    (2, 1, 64, [1000, 4095]),
])
def test_rope_table(gpu: Gpu, rng: np.random.Generator, half: bool, heads: int, kv_heads: int, d: int,
                    positions: list[int]) -> None:
    pos = np.array(positions, np.uint32)
    tokens, capacity, theta = len(pos), 4100, 10000.0
    cs = table(capacity, d, theta)
    q = rng.standard_normal((tokens, heads, d)).astype(np.float32)
    k = rng.standard_normal((tokens, kv_heads, d)).astype(np.float32)
    v = rng.standard_normal((tokens, kv_heads, d)).astype(np.float32)
    q_buf = gpu.storage(q)
    cache = kv_words(np.full((kv_heads, capacity, d), SENTINEL, np.float32))  # u32[kv_heads, capacity, d / 2]
    k_cache, v_cache = gpu.storage(cache), gpu.storage(cache)
    p = gpu.uniform(PARAMS.pack(tokens=tokens, num_heads=heads, num_kv_heads=kv_heads, head_dim=d, capacity=capacity))
    gpu.run(gpu.pipeline(SHADER, "main", {**ENGINE, "HALF": half}),
            [gpu.storage(pos), gpu.storage(cs), gpu.storage(k), gpu.storage(v), q_buf, k_cache, v_cache, p],
            rope_grid(tokens, heads, d, ENGINE["WG"]))
    # two products and a sum in f32 (fused or not): a few eps of the pair's magnitude
    tol_q = 4 * EPS32 * np.abs(q).max(axis=-1, keepdims=True)
    assert_close(gpu.read(q_buf).reshape(q.shape), rope_ref(q, cs, pos, half), tol_q, "q")
    got_k = gpu.read(k_cache, np.uint32).reshape(cache.shape)
    got_v = gpu.read(v_cache, np.uint32).reshape(cache.shape)
    # the keys: the f16 rounding of the f32 rotation (within its few eps); the values: exactly kv_f16(v)
    tol_k = 4 * EPS32 * np.abs(k).max(axis=-1, keepdims=True)
    assert_kv_rounds(kv_values(got_k[:, pos]).transpose(1, 0, 2), rope_ref(k, cs, pos, half), tol_k, "k cache")
    np.testing.assert_array_equal(got_v[:, pos].transpose(1, 0, 2), kv_words(v))
    np.testing.assert_array_equal(kv_values(got_v[:, pos]).transpose(1, 0, 2), kv_f16(v))
    untouched = np.ones(capacity, bool)
    untouched[pos] = False
    assert np.all(got_k[:, untouched] == cache[:, untouched]) and np.all(got_v[:, untouched] == cache[:, untouched])
