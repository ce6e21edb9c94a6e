"""rmsnorm.wgsl and swiglu.wgsl against numpy (argmax.wgsl: test_argmax.py)."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import elementwise_grid, params, rmsnorm_grid
from .reference import EPS32, assert_close, rmsnorm, silu


@pytest.mark.parametrize("tokens,n", [(1, 576), (3, 96), (5, 1000), (2, 7)])
def test_rmsnorm(gpu: Gpu, rng: np.random.Generator, tokens: int, n: int) -> None:
    x = (rng.standard_normal((tokens, n)) * rng.uniform(0.1, 10.0, (tokens, 1))).astype(np.float32)
    w = rng.uniform(-2.0, 2.0, n).astype(np.float32)
    eps = 1e-5
    y = gpu.zeros(x.nbytes)
    p = gpu.uniform(params("rmsnorm.wgsl", n=n, eps=eps))
    gpu.run(gpu.pipeline("rmsnorm.wgsl"), [gpu.storage(x), gpu.storage(w), y, p], rmsnorm_grid(tokens))
    want = rmsnorm(x.astype(np.float64), w.astype(np.float64), eps)
    # the sum of n positive squares errs by at most ~sqrt(n) eps relative (random walk, no cancellation); the
    # inverse square root and two products add a few ulps
    tol = (np.sqrt(n) + 8.0) * EPS32 * np.abs(want)
    assert_close(gpu.read(y).reshape(tokens, n), want, tol, f"rmsnorm T={tokens} n={n}")


def test_swiglu(gpu: Gpu, rng: np.random.Generator) -> None:
    n = 1537
    g = (rng.standard_normal(n) * 4.0).astype(np.float32)
    g[:3] = [-100.0, 100.0, 0.0]  # exp overflow to inf must still give silu(-100) = -0
    u = rng.standard_normal(n).astype(np.float32)
    y = gpu.zeros(4 * n)
    gpu.run(gpu.pipeline("swiglu.wgsl"), [gpu.storage(g), gpu.storage(u), y,
                                          gpu.uniform(params("swiglu.wgsl", n=n))], elementwise_grid(n))
    want = silu(g.astype(np.float64)) * u
    # exp is accurate to about (1 + |g|) ulps relative; a division and a product add a few more
    tol = (8.0 + 2.0 * np.abs(g)) * EPS32 * np.abs(want) + 1e-37
    assert_close(gpu.read(y), want, tol, "swiglu")
