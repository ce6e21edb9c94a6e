"""rmsnorm.wgsl, swiglu.wgsl and argmax.wgsl against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import argmax_blocks, argmax_grid, elementwise_grid, params, rmsnorm_grid
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


@pytest.mark.parametrize("n", [1, 7, 300, 49152])
def test_argmax(gpu: Gpu, rng: np.random.Generator, n: int) -> None:
    pipe = gpu.pipeline("argmax.wgsl")
    out = gpu.zeros(4)
    logits = rng.standard_normal(n).astype(np.float32) * 5.0
    cases = [logits]
    if n > 3:
        ties = logits.copy()
        top = ties.max() + 1.0
        ties[[n - 1, n // 2, 2]] = top  # three equal maxima: the lowest index (2) wins
        masked = np.full(n, -np.inf, np.float32)
        masked[n - 2] = -1e30  # everything else masked out
        cases += [ties, masked, np.full(n, -np.inf, np.float32), np.zeros(n, np.float32)]
    for case in cases:
        gpu.run(pipe, [gpu.storage(case), out, gpu.uniform(params("argmax.wgsl", n=n))], argmax_grid())
        assert int(gpu.read(out, np.uint32)[0]) == int(np.argmax(case))


@pytest.mark.parametrize("n,wg,items", [(1, 256, 8), (7, 4, 1), (300, 16, 2), (49152, 256, 8), (151936, 256, 8),
                                        (1000, 32, 3)])
def test_argmax_two_dispatches(gpu: Gpu, rng: np.random.Generator, n: int, wg: int, items: int) -> None:
    """main_blocks (best of each block of WG * ITEMS logits) then main_pairs (best of the blocks): numpy.argmax,
    ties to the lowest index across blocks too."""
    blocks_pipe = gpu.pipeline("argmax.wgsl", "main_blocks", {"WG": wg, "ITEMS": items})
    pairs_pipe = gpu.pipeline("argmax.wgsl", "main_pairs", {"WG": wg})
    blocks = argmax_blocks(n, wg, items)
    pairs, out = gpu.zeros(8 * blocks), gpu.zeros(4)
    logits = rng.standard_normal(n).astype(np.float32) * 5.0
    cases = [logits]
    if n > 3:
        ties = logits.copy()
        ties[[n - 1, n // 2, 2]] = ties.max() + 1.0  # equal maxima in different blocks: the lowest index (2) wins
        late = logits.copy()
        late[[n - 1, n - 2]] = late.max() + 2.0  # the maximum in the last (partial) block
        masked = np.full(n, -np.inf, np.float32)
        masked[n - 2] = -1e30
        cases += [ties, late, masked, np.full(n, -np.inf, np.float32), np.zeros(n, np.float32)]
    for case in cases:
        gpu.run(blocks_pipe, [gpu.storage(case), pairs, gpu.uniform(params("argmax.wgsl", n=n))], (blocks, 1, 1))
        gpu.run(pairs_pipe, [pairs, out, gpu.uniform(params("argmax.wgsl", n=blocks))], argmax_grid())
        assert int(gpu.read(out, np.uint32)[0]) == int(np.argmax(case))
