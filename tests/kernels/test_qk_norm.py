"""qk_norm.wgsl: Qwen3's per-head RMSNorm of q and k in place (query heads with wq, key heads with wk, values and
other columns of the row untouched), against numpy; with the engine's tuning (webgpu_shaders/kernels.json)."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import params, qk_norm_grid, tuning
from .reference import EPS32, assert_close, rmsnorm

SHADER = "qk_norm.wgsl"
ENGINE = tuning(SHADER)  # {WG} as the engine compiles it


# (tokens, query heads, key heads, head_dim, extra values per row): decode's qkv row (values after the key heads),
# a prefill pass's stacked rows, s.q alone (no key heads), s.k alone (no query heads), a head smaller than WG
@pytest.mark.parametrize("tokens,q_heads,k_heads,d,extra", [(1, 16, 8, 128, 8 * 128), (37, 4, 2, 64, 2 * 64),
                                                            (5, 4, 0, 64, 0), (5, 0, 2, 64, 0), (3, 3, 1, 24, 24)])
def test_qk_norm(gpu: Gpu, rng: np.random.Generator, tokens: int, q_heads: int, k_heads: int, d: int,
                 extra: int) -> None:
    heads = q_heads + k_heads
    stride = heads * d + extra
    x = (rng.standard_normal((tokens, stride)) * rng.uniform(0.1, 10.0, (tokens, 1))).astype(np.float32)
    wq, wk = (rng.uniform(-2.0, 2.0, d).astype(np.float32) for _ in range(2))
    eps = 1e-6
    buf = gpu.storage(x)
    p = gpu.uniform(params(SHADER, heads=heads, q_heads=q_heads, head_dim=d, stride=stride, tokens=tokens, eps=eps))
    gpu.run(gpu.pipeline(SHADER, "main", ENGINE), [gpu.storage(wq), gpu.storage(wk), buf, p],
            qk_norm_grid(heads, tokens))
    got = gpu.read(buf).reshape(tokens, stride)
    x64 = x.astype(np.float64)
    want = x64.copy()
    q = x64[:, :q_heads * d].reshape(tokens, q_heads, d)
    k = x64[:, q_heads * d:heads * d].reshape(tokens, k_heads, d)
    want[:, :q_heads * d] = rmsnorm(q, wq.astype(np.float64), eps).reshape(tokens, -1)
    want[:, q_heads * d:heads * d] = rmsnorm(k, wk.astype(np.float64), eps).reshape(tokens, -1)
    # as rmsnorm.wgsl: the sum of d positive squares errs by ~sqrt(d) eps relative, a few ulps more for the rest
    normed = want[:, :heads * d]
    assert_close(got[:, :heads * d], normed, (np.sqrt(d) + 8.0) * EPS32 * np.abs(normed),
                 f"qk_norm T={tokens} H={q_heads} KV={k_heads} d={d}")
    np.testing.assert_array_equal(got[:, heads * d:], x[:, heads * d:])  # the rest of the row is left alone
