"""matmul.wgsl: prefill Y[T, rows] = X[T, cols] @ W^T for q4 and q8, chunked rows, and the fused residual add."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import matmul_grid, params, tuning
from .reference import EPS32, assert_close, dot_tolerance, random_qtensor

SHADER = "matmul.wgsl"
ENGINE = tuning(SHADER)  # {WX, WY} as the engine compiles it (webgpu_shaders/kernels.json)
SENTINEL = -7.25


@pytest.mark.parametrize("storage", ["q4", "q8"])
@pytest.mark.parametrize("rows,cols,tokens", [(37, 96, 1), (70, 160, 5), (129, 576, 33), (3, 32, 2)])
def test_matmul(gpu: Gpu, rng: np.random.Generator, storage: str, rows: int, cols: int, tokens: int) -> None:
    q = random_qtensor(rng, storage, rows, cols)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    # this chunk is rows [2, 2 + rows) of a (rows + 5)-wide output
    offset, stride = 2, rows + 5
    y = gpu.storage(np.full(tokens * stride, SENTINEL, np.float32))
    pipe = gpu.pipeline(SHADER, "main", {"QBITS": q.qbits, **ENGINE})
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=offset, tokens=tokens, y_stride=stride))
    gpu.run(pipe, [gpu.storage(q.planes["qweight"]), gpu.storage(q.planes["scales"]), gpu.storage(x), y, p],
            matmul_grid(rows, tokens, ENGINE["WX"], ENGINE["WY"]))
    got = gpu.read(y).reshape(tokens, stride)
    want = x.astype(np.float64) @ q.w.T
    assert_close(got[:, offset:offset + rows], want, dot_tolerance(q, x), f"{storage} {rows}x{cols} T={tokens}")
    outside = np.delete(got, np.s_[offset:offset + rows], axis=1)
    assert np.all(outside == SENTINEL), "wrote outside the chunk's columns"


@pytest.mark.parametrize("storage", ["q4", "q8"])
def test_matmul_accumulate_small_tiles(gpu: Gpu, rng: np.random.Generator, storage: str) -> None:
    """ACCUMULATE (Y += X W^T, the residual add) with non-default tiles: 8 x 4 threads, 32 rows x 8 tokens."""
    rows, cols, tokens = 45, 224, 11
    q = random_qtensor(rng, storage, rows, cols)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    h = rng.standard_normal((tokens, rows)).astype(np.float32)
    y = gpu.storage(h)
    pipe = gpu.pipeline(SHADER, "main", {"QBITS": q.qbits, "WX": 8, "WY": 4, "ACCUMULATE": True})
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=0, tokens=tokens, y_stride=rows))
    gpu.run(pipe, [gpu.storage(q.planes["qweight"]), gpu.storage(q.planes["scales"]), gpu.storage(x), y, p],
            matmul_grid(rows, tokens, 8, 4))
    want = h + x.astype(np.float64) @ q.w.T
    tol = dot_tolerance(q, x) + EPS32 * np.abs(want)
    assert_close(gpu.read(y).reshape(tokens, rows), want, tol, f"{storage} accumulate")
