"""rope.wgsl: RoPE of q in place and of k into the KV cache (plus v), both pair layouts, positions from a buffer."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import params, rope_grid
from .reference import EPS32, F64, assert_close

SHADER = "rope.wgsl"
SENTINEL = -7.25


def rope_ref(x: F64, positions: np.ndarray, theta: float, half: bool) -> tuple[F64, F64]:
    """x: [T, heads, d] -> (rotated x, angle per [T, 1, d] element) in float64."""
    d = x.shape[-1]
    i = np.arange(d // 2)
    angle = positions[:, None].astype(np.float64) * theta ** (-2.0 * i / d)  # [T, d/2]
    c, s = np.cos(angle)[:, None, :], np.sin(angle)[:, None, :]
    a, b = (x[..., : d // 2], x[..., d // 2:]) if half else (x[..., 0::2], x[..., 1::2])
    ra, rb = a * c - b * s, a * s + b * c
    out = np.empty_like(x)
    if half:
        out[..., : d // 2], out[..., d // 2:] = ra, rb
    else:
        out[..., 0::2], out[..., 1::2] = ra, rb
    pair_angle = np.concatenate([angle, angle], axis=-1) if half else np.repeat(angle, 2, axis=-1)
    return out, pair_angle[:, None, :]


def rope_tolerance(x: np.ndarray, angle: F64) -> F64:
    """The kernel's angle is f32(pos) * pow(theta, -2i/d) in f32, reduced to [-pi, pi]: a few ulps of the angle off
    the exact one (pow's ulps scale with the angle too). An angle error e moves a rotated value by at most e times
    the pair's magnitude; sin/cos of the reduced angle and the rotation's products add a few eps of it."""
    mag = np.abs(x).max(axis=-1, keepdims=True) * np.sqrt(2.0)  # bounds every pair's magnitude in a head
    ulp = np.spacing(np.abs(angle).astype(np.float32)).astype(np.float64)
    return mag * (16.0 * ulp + 16.0 * EPS32)


@pytest.mark.parametrize("half", [False, True])
@pytest.mark.parametrize("heads,kv_heads,d,positions", [
    (9, 3, 64, [17]),                     # SmolLM2 decode
    (9, 3, 64, [5, 6, 7, 8, 9]),          # prefill of 5 tokens starting at 5
    (4, 2, 128, [0, 1, 2]),               # head_dim 128 from position 0
    (2, 1, 64, [1000, 4095]),             # large angles (range reduction)
])
def test_rope_qkv(gpu: Gpu, rng: np.random.Generator, half: bool, heads: int, kv_heads: int, d: int,
                  positions: list[int]) -> None:
    pos = np.array(positions, np.uint32)
    tokens, capacity, theta = len(pos), 4100, 10000.0
    q = rng.standard_normal((tokens, heads, d)).astype(np.float32)
    k = rng.standard_normal((tokens, kv_heads, d)).astype(np.float32)
    v = rng.standard_normal((tokens, kv_heads, d)).astype(np.float32)
    q_buf = gpu.storage(q)
    cache = np.full((kv_heads, capacity, d), SENTINEL, np.float32)
    k_cache, v_cache = gpu.storage(cache), gpu.storage(cache)
    p = gpu.uniform(params(SHADER, tokens=tokens, num_heads=heads, num_kv_heads=kv_heads, head_dim=d,
                           capacity=capacity, theta=theta))
    gpu.run(gpu.pipeline(SHADER, "main", {"HALF": half}),
            [gpu.storage(pos), gpu.storage(k), gpu.storage(v), q_buf, k_cache, v_cache, p],
            rope_grid(tokens, heads, d))

    want_q, angle = rope_ref(q.astype(np.float64), pos, theta, half)
    assert_close(gpu.read(q_buf).reshape(q.shape), want_q, rope_tolerance(q, angle), "q")
    want_k, _ = rope_ref(k.astype(np.float64), pos, theta, half)
    got_k = gpu.read(k_cache).reshape(cache.shape)
    got_v = gpu.read(v_cache).reshape(cache.shape)
    assert_close(got_k[:, pos].transpose(1, 0, 2), want_k, rope_tolerance(k, angle), "k cache")
    np.testing.assert_array_equal(got_v[:, pos].transpose(1, 0, 2), v)
    untouched = np.ones(capacity, bool)
    untouched[pos] = False
    assert np.all(got_k[:, untouched] == SENTINEL) and np.all(got_v[:, untouched] == SENTINEL)
