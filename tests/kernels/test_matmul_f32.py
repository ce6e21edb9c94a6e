"""matmul_f32.wgsl: the prefill matrix product for storage-f32 weights (the f32 twin of matmul.wgsl), into a
chunk of a wider output, plain and accumulating, against numpy; with the engine's tuning
(webgpu_shaders/kernels.json)."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import matmul_f32_grid, params, tuning
from .reference import EPS32, assert_close, dense_tolerance

SHADER = "matmul_f32.wgsl"
ENGINE = tuning(SHADER)  # {TILE} as the engine compiles it


@pytest.mark.parametrize("rows,cols,tokens", [(37, 96, 5), (64, 128, 16), (130, 33, 40), (1, 1, 1)])
@pytest.mark.parametrize("accumulate", [False, True])
def test_matmul_f32(gpu: Gpu, rng: np.random.Generator, rows: int, cols: int, tokens: int, accumulate: bool) -> None:
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    offset, stride = 2, rows + 5  # as if this were a middle chunk of a wider output
    y0 = rng.standard_normal((tokens, stride)).astype(np.float32)
    y = gpu.storage(y0)
    pipe = gpu.pipeline(SHADER, "main", {**ENGINE, "ACCUMULATE": accumulate})
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=offset, tokens=tokens, y_stride=stride))
    gpu.run(pipe, [gpu.storage(w), gpu.storage(x), y, p], matmul_f32_grid(rows, tokens, ENGINE["TILE"]))
    got = gpu.read(y).reshape(tokens, stride)
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    want = x64 @ w64.T + (y0[:, offset:offset + rows] if accumulate else 0.0)
    tol = dense_tolerance(w64, x64) + EPS32 * np.abs(want)
    assert_close(got[:, offset:offset + rows], want, tol, f"matmul f32 {rows}x{cols} T={tokens}")
    outside = np.ones(stride, bool)
    outside[offset:offset + rows] = False
    np.testing.assert_array_equal(got[:, outside], y0[:, outside])
