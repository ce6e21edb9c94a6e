"""matmul.wgsl: prefill Y[T, rows] = X[T, cols] @ W^T for q4 and q8, chunked rows, and the fused residual add."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import matmul_grid, params, tunings
from .reference import EPS32, assert_close, dot_tolerance, random_qtensor

SHADER = "matmul.wgsl"
ENGINE = tunings(SHADER)  # every tuning the engine compiles (webgpu_shaders/kernels.json), by name
# register tiles of every shape the kernel allows (RV, TV in 1..2), small workgroups so partial tiles are common
OTHERS = {"8x4 1x1": {"WX": 8, "WY": 4, "RV": 1, "TV": 1}, "8x8 2x2": {"WX": 8, "WY": 8, "RV": 2, "TV": 2},
          "8x8 1x2": {"WX": 8, "WY": 8, "RV": 1, "TV": 2}, "8x16 2x1": {"WX": 8, "WY": 16, "RV": 2, "TV": 1},
          # 128 x 128 tiles: 32 KiB of workgroup memory, which probe() asks for where the adapter offers it
          "16x16 2x2": {"WX": 16, "WY": 16, "RV": 2, "TV": 2}}
TUNINGS = {**{f"engine {k}": v for k, v in ENGINE.items()}, **OTHERS}
SENTINEL = -7.25


@pytest.mark.parametrize("tuning", sorted(TUNINGS))
def test_tuning_fits(tuning: str) -> None:
    """The limits the kernel's header states: register arrays of 2 vec4s and 8 items, whole XOR-swizzled columns,
    and workgroup memory: the engine's tunings within WebGPU's default 16 KiB (every adapter runs them; Dawn rejects
    a pipeline past the device's limit), others within the 32 KiB that probe() asks for where it is offered."""
    t = TUNINGS[tuning]
    br, bt, threads = 4 * t["RV"] * t["WX"], 4 * t["TV"] * t["WY"], t["WX"] * t["WY"]
    assert t["RV"] in (1, 2) and t["TV"] in (1, 2)
    assert t["RV"] * t["WX"] % 8 == 0, "the weight tile's XOR (wswz) would leave its column"
    assert -(-br * 8 // threads) <= 8, "W_ITEMS > 8 for q8 (8 words per row and group)"
    assert -(-bt * 8 // threads) <= 8, "X_ITEMS > 8"
    limit = 16384 if tuning.startswith("engine ") else 32768
    assert 32 * 4 * (br + bt) <= limit, f"tiles exceed {limit} bytes of workgroup memory"


@pytest.mark.parametrize("tuning", sorted(TUNINGS))
@pytest.mark.parametrize("storage", ["q4", "q8"])
@pytest.mark.parametrize("rows,cols,tokens", [(37, 96, 1), (70, 160, 5), (129, 576, 33), (3, 32, 2), (200, 64, 70)])
def test_matmul(gpu: Gpu, rng: np.random.Generator, tuning: str, storage: str, rows: int, cols: int,
                tokens: int) -> None:
    t = TUNINGS[tuning]
    q = random_qtensor(rng, storage, rows, cols)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    # this chunk is rows [2, 2 + rows) of a (rows + 5)-wide output
    offset, stride = 2, rows + 5
    y = gpu.storage(np.full(tokens * stride, SENTINEL, np.float32))
    pipe = gpu.pipeline(SHADER, "main", {"QBITS": q.qbits, **t})
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=offset, tokens=tokens, y_stride=stride))
    gpu.run(pipe, [gpu.storage(q.planes["qweight"]), gpu.storage(q.planes["scales"]), gpu.storage(x), y, p],
            matmul_grid(rows, tokens, t))
    got = gpu.read(y).reshape(tokens, stride)
    want = x.astype(np.float64) @ q.w.T
    assert_close(got[:, offset:offset + rows], want, dot_tolerance(q, x), f"{storage} {rows}x{cols} T={tokens}")
    outside = np.delete(got, np.s_[offset:offset + rows], axis=1)
    assert np.all(outside == SENTINEL), "wrote outside the chunk's columns"


@pytest.mark.parametrize("tuning", sorted(TUNINGS))
@pytest.mark.parametrize("storage", ["q4", "q8"])
def test_matmul_accumulate(gpu: Gpu, rng: np.random.Generator, tuning: str, storage: str) -> None:
    """ACCUMULATE (Y += X W^T, the residual add)."""
    t = TUNINGS[tuning]
    rows, cols, tokens = 45, 224, 11
    q = random_qtensor(rng, storage, rows, cols)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    h = rng.standard_normal((tokens, rows)).astype(np.float32)
    y = gpu.storage(h)
    pipe = gpu.pipeline(SHADER, "main", {"QBITS": q.qbits, **t, "ACCUMULATE": True})
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=0, tokens=tokens, y_stride=rows))
    gpu.run(pipe, [gpu.storage(q.planes["qweight"]), gpu.storage(q.planes["scales"]), gpu.storage(x), y, p],
            matmul_grid(rows, tokens, t))
    want = h + x.astype(np.float64) @ q.w.T
    tol = dot_tolerance(q, x) + EPS32 * np.abs(want)
    assert_close(gpu.read(y).reshape(tokens, rows), want, tol, f"{storage} accumulate")


def test_matmul_sums_in_column_order(gpu: Gpu, rng: np.random.Generator) -> None:
    """Every tuning gives the same bits: each Y element is summed over columns in increasing order (so the engine's
    prefill does not depend on the tile a shape gets)."""
    rows, cols, tokens = 70, 192, 19
    q = random_qtensor(rng, "q4", rows, cols)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=0, tokens=tokens, y_stride=rows))
    results = []
    for t in TUNINGS.values():
        y = gpu.zeros(4 * rows * tokens)
        gpu.run(gpu.pipeline(SHADER, "main", {"QBITS": 4, **t}),
                [gpu.storage(q.planes["qweight"]), gpu.storage(q.planes["scales"]), gpu.storage(x), y, p],
                matmul_grid(rows, tokens, t))
        results.append(gpu.read(y))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
