"""rmsnorm.wgsl: RMSNorm of each token's row (prefill), against numpy; with the engine's tuning
(webgpu_shaders/kernels.json)."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import params, rmsnorm_grid, tuning
from .reference import EPS32, assert_close, rmsnorm

SHADER = "rmsnorm.wgsl"
ENGINE = tuning(SHADER)  # {WG} as the engine compiles it


@pytest.mark.parametrize("tokens,n", [(1, 576), (3, 96), (5, 1000), (2, 7)])
def test_rmsnorm(gpu: Gpu, rng: np.random.Generator, tokens: int, n: int) -> None:
    x = (rng.standard_normal((tokens, n)) * rng.uniform(0.1, 10.0, (tokens, 1))).astype(np.float32)
    w = rng.uniform(-2.0, 2.0, n).astype(np.float32)
    eps = 1e-5
    y = gpu.zeros(x.nbytes)
    p = gpu.uniform(params(SHADER, n=n, eps=eps))
    gpu.run(gpu.pipeline(SHADER, "main", ENGINE), [gpu.storage(x), gpu.storage(w), y, p], rmsnorm_grid(tokens))
    want = rmsnorm(x.astype(np.float64), w.astype(np.float64), eps)
    # the sum of n positive squares errs by at most ~sqrt(n) eps relative (random walk, no cancellation); the
    # inverse square root and two products add a few ulps
    tol = (np.sqrt(n) + 8.0) * EPS32 * np.abs(want)
    assert_close(gpu.read(y).reshape(tokens, n), want, tol, f"rmsnorm T={tokens} n={n}")
