"""matvec_f32.wgsl: decode matrix-vector products for storage-f32 weights (plain, residual add, RMSNorm folded in,
gate+up+SwiGLU), the f32 twin of matvec.wgsl, against numpy; with the engine's tuning (webgpu_shaders/kernels.json)."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import matvec_f32_grid, params, tuning
from .reference import EPS32, assert_close, dense_tolerance, rmsnorm, silu

SHADER = "matvec_f32.wgsl"
ENGINE = tuning(SHADER)  # {WG, R} as the engine compiles it
SENTINEL = -7.25  # output elements outside the chunk's range must keep it


@pytest.mark.parametrize("rows,cols", [(37, 96), (1, 7), (300, 130), (129, 576)])
@pytest.mark.parametrize("r", sorted({1, ENGINE["R"], 8}))
def test_matvec_f32(gpu: Gpu, rng: np.random.Generator, rows: int, cols: int, r: int) -> None:
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    offset = 3
    y = gpu.storage(np.full(offset + rows + 2, SENTINEL, np.float32))
    pipe = gpu.pipeline(SHADER, "main", {**ENGINE, "R": r})
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=offset, eps=0.0))
    gpu.run(pipe, [gpu.storage(w), gpu.storage(x), y, p], matvec_f32_grid(rows, r))
    got = gpu.read(y)
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    assert_close(got[offset:offset + rows], w64 @ x64, dense_tolerance(w64, x64), f"f32 {rows}x{cols} R={r}")
    assert np.all(got[:offset] == SENTINEL) and np.all(got[offset + rows:] == SENTINEL), "wrote outside the chunk"


def test_matvec_f32_accumulate(gpu: Gpu, rng: np.random.Generator) -> None:
    rows, cols = 70, 100
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    h = rng.standard_normal(rows).astype(np.float32)
    y = gpu.storage(h)
    pipe = gpu.pipeline(SHADER, "main", {**ENGINE, "ACCUMULATE": True})
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=0, eps=0.0))
    gpu.run(pipe, [gpu.storage(w), gpu.storage(x), y, p], matvec_f32_grid(rows, ENGINE["R"]))
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    want = h + w64 @ x64
    assert_close(gpu.read(y), want, dense_tolerance(w64, x64) + EPS32 * np.abs(want), "f32 accumulate")


def test_matvec_f32_norm(gpu: Gpu, rng: np.random.Generator) -> None:
    rows, cols, eps = 45, 200, 1e-5
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = (rng.standard_normal(cols) * 3.0).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    y = gpu.storage(np.full(rows + 2, SENTINEL, np.float32))
    pipe = gpu.pipeline(SHADER, "main_norm", ENGINE)
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=2, eps=eps))
    gpu.run(pipe, [gpu.storage(w), gpu.storage(x), gpu.storage(nw), y, p], matvec_f32_grid(rows, ENGINE["R"]))
    w64 = w.astype(np.float64)
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    want = w64 @ xn
    got = gpu.read(y)
    assert_close(got[2:], want, dense_tolerance(w64, xn) + 8 * EPS32 * np.abs(want), "f32 norm")
    assert np.all(got[:2] == SENTINEL)


def test_matvec_f32_swiglu(gpu: Gpu, rng: np.random.Generator) -> None:
    rows, cols, eps = 83, 96, 1e-6
    wg = rng.standard_normal((rows, cols)).astype(np.float32)
    wu = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    y = gpu.storage(np.full(rows + 1, SENTINEL, np.float32))
    pipe = gpu.pipeline(SHADER, "main_swiglu", {**ENGINE, "R": 3})
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=1, eps=eps))
    buffers = [gpu.storage(wg), gpu.storage(x), gpu.storage(nw), gpu.storage(wu), y, p]
    gpu.run(pipe, buffers, matvec_f32_grid(rows, 3))
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    g, u = wg.astype(np.float64) @ xn, wu.astype(np.float64) @ xn
    want = silu(g) * u
    tol_g = dense_tolerance(wg.astype(np.float64), xn) + 8 * EPS32 * np.abs(g)
    tol_u = dense_tolerance(wu.astype(np.float64), xn) + 8 * EPS32 * np.abs(u)
    tol = 1.1 * np.abs(u) * tol_g + np.abs(silu(g)) * tol_u + 8 * EPS32 * np.abs(want)
    got = gpu.read(y)
    assert_close(got[1:], want, tol, "f32 swiglu")
    assert got[0] == SENTINEL
