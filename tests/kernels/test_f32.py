"""matvec_f32.wgsl, matmul_f32.wgsl and embed_f32.wgsl (the storage-f32 twins, same Params as the q4/q8 kernels)
and bias.wgsl, against numpy."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from .gpu import Gpu, grid_1d
from .kernels import PARAMS, Field, ParamsLayout
from .reference import EPS32, assert_close, rmsnorm, silu

SENTINEL = -7.25  # output elements outside the chunk's range must keep it
# bias.wgsl's uniform (the f32 twins reuse matvec.wgsl's, matmul.wgsl's and embed.wgsl's)
BIAS_PARAMS = ParamsLayout("bias.wgsl", (Field("n", "u32"), Field("tokens", "u32")))


def _tol(w: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """f32 rounding allowance of W x (x: [cols] or [T, cols]): 2 eps sqrt(n) |w_c x_c|_2 (reference.dot_tolerance)."""
    norm = np.sqrt(x ** 2 @ (w ** 2).T)
    return 2.0 * EPS32 * np.sqrt(w.shape[1]) * norm + 1e-30


def _matvec_grid(rows: int, r: int = 4) -> tuple[int, int, int]:
    return grid_1d(math.ceil(rows / r))


@pytest.mark.parametrize("rows,cols", [(37, 96), (1, 7), (300, 130), (129, 576)])
@pytest.mark.parametrize("r", [1, 4, 8])
def test_matvec_f32(gpu: Gpu, rng: np.random.Generator, rows: int, cols: int, r: int) -> None:
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    offset = 3
    y = gpu.storage(np.full(offset + rows + 2, SENTINEL, np.float32))
    pipe = gpu.pipeline("matvec_f32.wgsl", "main", {"R": r})
    p = gpu.uniform(PARAMS["matvec.wgsl"].pack(rows=rows, cols=cols, row_offset=offset, eps=0.0))
    gpu.run(pipe, [gpu.storage(w), gpu.storage(x), y, p], _matvec_grid(rows, r))
    got = gpu.read(y)
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    assert_close(got[offset:offset + rows], w64 @ x64, _tol(w64, x64), f"f32 {rows}x{cols} R={r}")
    assert np.all(got[:offset] == SENTINEL) and np.all(got[offset + rows:] == SENTINEL), "wrote outside the chunk"


def test_matvec_f32_accumulate(gpu: Gpu, rng: np.random.Generator) -> None:
    rows, cols = 70, 100
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    h = rng.standard_normal(rows).astype(np.float32)
    y = gpu.storage(h)
    pipe = gpu.pipeline("matvec_f32.wgsl", "main", {"ACCUMULATE": True})
    p = gpu.uniform(PARAMS["matvec.wgsl"].pack(rows=rows, cols=cols, row_offset=0, eps=0.0))
    gpu.run(pipe, [gpu.storage(w), gpu.storage(x), y, p], _matvec_grid(rows))
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    want = h + w64 @ x64
    assert_close(gpu.read(y), want, _tol(w64, x64) + EPS32 * np.abs(want), "f32 accumulate")


def test_matvec_f32_norm(gpu: Gpu, rng: np.random.Generator) -> None:
    rows, cols, eps = 45, 200, 1e-5
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = (rng.standard_normal(cols) * 3.0).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    y = gpu.storage(np.full(rows + 2, SENTINEL, np.float32))
    pipe = gpu.pipeline("matvec_f32.wgsl", "main_norm")
    p = gpu.uniform(PARAMS["matvec.wgsl"].pack(rows=rows, cols=cols, row_offset=2, eps=eps))
    gpu.run(pipe, [gpu.storage(w), gpu.storage(x), gpu.storage(nw), y, p], _matvec_grid(rows))
    w64 = w.astype(np.float64)
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    want = w64 @ xn
    got = gpu.read(y)
    assert_close(got[2:], want, _tol(w64, xn) + 8 * EPS32 * np.abs(want), "f32 norm")
    assert np.all(got[:2] == SENTINEL)


def test_matvec_f32_swiglu(gpu: Gpu, rng: np.random.Generator) -> None:
    rows, cols, eps = 83, 96, 1e-6
    wg = rng.standard_normal((rows, cols)).astype(np.float32)
    wu = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    y = gpu.storage(np.full(rows + 1, SENTINEL, np.float32))
    pipe = gpu.pipeline("matvec_f32.wgsl", "main_swiglu", {"R": 3})
    p = gpu.uniform(PARAMS["matvec.wgsl"].pack(rows=rows, cols=cols, row_offset=1, eps=eps))
    buffers = [gpu.storage(wg), gpu.storage(x), gpu.storage(nw), gpu.storage(wu), y, p]
    gpu.run(pipe, buffers, _matvec_grid(rows, 3))
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    g, u = wg.astype(np.float64) @ xn, wu.astype(np.float64) @ xn
    want = silu(g) * u
    tol_g = _tol(wg.astype(np.float64), xn) + 8 * EPS32 * np.abs(g)
    tol_u = _tol(wu.astype(np.float64), xn) + 8 * EPS32 * np.abs(u)
    tol = 1.1 * np.abs(u) * tol_g + np.abs(silu(g)) * tol_u + 8 * EPS32 * np.abs(want)
    got = gpu.read(y)
    assert_close(got[1:], want, tol, "f32 swiglu")
    assert got[0] == SENTINEL


@pytest.mark.parametrize("rows,cols,tokens", [(37, 96, 5), (64, 128, 16), (130, 33, 40), (1, 1, 1)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_f32(gpu: Gpu, rng: np.random.Generator, rows: int, cols: int, tokens: int, accumulate: bool) -> None:
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    offset, stride = 2, rows + 5  # as if this were a middle chunk of a wider output
    y0 = rng.standard_normal((tokens, stride)).astype(np.float32)
    y = gpu.storage(y0)
    pipe = gpu.pipeline("matmul_f32.wgsl", "main", {"ACCUMULATE": accumulate})
    p = gpu.uniform(PARAMS["matmul.wgsl"].pack(rows=rows, cols=cols, row_offset=offset, tokens=tokens,
                                               y_stride=stride))
    gpu.run(pipe, [gpu.storage(w), gpu.storage(x), y, p], (math.ceil(rows / 16), math.ceil(tokens / 16), 1))
    got = gpu.read(y).reshape(tokens, stride)
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    want = x64 @ w64.T + (y0[:, offset:offset + rows] if accumulate else 0.0)
    tol = _tol(w64, x64) + EPS32 * np.abs(want)
    assert_close(got[:, offset:offset + rows], want, tol, f"matmul f32 {rows}x{cols} T={tokens}")
    outside = np.ones(stride, bool)
    outside[offset:offset + rows] = False
    np.testing.assert_array_equal(got[:, outside], y0[:, outside])


def test_embed_f32(gpu: Gpu, rng: np.random.Generator) -> None:
    """Two chunks of a 50-row table looked up by two dispatches; each writes only its own tokens."""
    vocab, cols = 50, 70
    table = rng.standard_normal((vocab, cols)).astype(np.float32)
    ids = np.array([0, 49, 20, 21, 7, 20], np.uint32)
    out = gpu.storage(np.full((len(ids), cols), SENTINEL, np.float32))
    pipe = gpu.pipeline("embed_f32.wgsl")
    for start, stop in [(0, 21), (21, 50)]:
        p = gpu.uniform(PARAMS["embed.wgsl"].pack(row_start=start, rows=stop - start, cols=cols, tokens=len(ids)))
        gpu.run(pipe, [gpu.storage(ids), gpu.storage(table[start:stop]), out, p],
                (math.ceil(cols / 64), len(ids), 1))
    np.testing.assert_array_equal(gpu.read(out).reshape(len(ids), cols), table[ids])


@pytest.mark.parametrize("tokens,n", [(1, 64), (7, 96), (300, 260)])
def test_bias(gpu: Gpu, rng: np.random.Generator, tokens: int, n: int) -> None:
    b = rng.standard_normal(n).astype(np.float32)
    y0 = rng.standard_normal((tokens, n)).astype(np.float32)
    y = gpu.storage(y0)
    p = gpu.uniform(BIAS_PARAMS.pack(n=n, tokens=tokens))
    gpu.run(gpu.pipeline("bias.wgsl"), [gpu.storage(b), y, p], grid_1d(math.ceil(tokens * n / 256)))
    np.testing.assert_array_equal(gpu.read(y).reshape(tokens, n), y0 + b)  # one f32 rounding, as numpy's
