"""matvec.wgsl: decode matrix-vector products (plain, residual add, RMSNorm folded in, gate+up+SwiGLU)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import wgpu

from .gpu import Gpu
from .kernels import matvec_grid, params, tunings
from .reference import EPS32, QTensor, assert_close, dot_tolerance, random_qtensor, rmsnorm, silu

SHADER = "matvec.wgsl"
SENTINEL = -7.25  # output elements outside the chunk's range must keep it
# (rows, cols): odd rows, cols a multiple of 32 but not of 256, SmolLM2's 576, and one row
SHAPES = [(37, 96), (129, 576), (1, 32), (300, 1056)]
# (TX, TY, R): every tuning the engine compiles matvec.wgsl with (webgpu_shaders/kernels.json: gpu, gpu_long, cpu),
# then the shader's defaults, a narrow non-power-of-two row split, R = 1 with a tall workgroup, and others timed in
# the engine
ENGINE_TUNINGS = [(t["TX"], t["TY"], t["R"]) for t in tunings(SHADER).values()]
TUNINGS = ENGINE_TUNINGS + [t for t in [(32, 4, 2), (12, 2, 3), (8, 8, 1), (16, 4, 4), (48, 2, 4), (16, 8, 4)]
                            if t not in ENGINE_TUNINGS]


def _constants(qbits: int, tuning: tuple[int, int, int], **extra: float) -> dict[str, float]:
    tx, ty, r = tuning
    return {"QBITS": qbits, "TX": tx, "TY": ty, "R": r, **extra}


def _upload(gpu: Gpu, q: QTensor) -> list[wgpu.GPUBuffer]:
    return [gpu.storage(q.planes["qweight"]), gpu.storage(q.planes["scales"])]


def _output(gpu: Gpu, size: int, init: npt.NDArray[np.float32] | None = None) -> wgpu.GPUBuffer:
    y = np.full(size, SENTINEL, np.float32) if init is None else init.astype(np.float32)
    return gpu.storage(y)


@pytest.mark.parametrize("storage", ["q4", "q8"])
@pytest.mark.parametrize("rows,cols", SHAPES)
def test_matvec(gpu: Gpu, rng: np.random.Generator, storage: str, rows: int, cols: int) -> None:
    q = random_qtensor(rng, storage, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    offset = 5  # as if this were the second chunk of a tensor: y[5 : 5 + rows]
    y = _output(gpu, offset + rows + 3)
    tuning = TUNINGS[rows % len(TUNINGS)]
    pipe = gpu.pipeline(SHADER, "main", _constants(q.qbits, tuning))
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=offset, eps=0.0))
    gpu.run(pipe, [*_upload(gpu, q), gpu.storage(x), y, p], matvec_grid(rows, tuning[1], tuning[2]))
    got = gpu.read(y)
    want = q.w @ x.astype(np.float64)
    assert_close(got[offset:offset + rows], want, dot_tolerance(q, x), f"{storage} {rows}x{cols}")
    assert np.all(got[:offset] == SENTINEL) and np.all(got[offset + rows:] == SENTINEL), "wrote outside the chunk"


@pytest.mark.parametrize("tuning", TUNINGS)
def test_matvec_tunings(gpu: Gpu, rng: np.random.Generator, tuning: tuple[int, int, int]) -> None:
    rows, cols = 75, 352  # 75 rows: never a whole number of workgroups; 11 units per row for q4, 22 for q8
    for storage in ("q4", "q8"):
        q = random_qtensor(rng, storage, rows, cols)
        x = rng.standard_normal(cols).astype(np.float32)
        y = _output(gpu, rows)
        pipe = gpu.pipeline(SHADER, "main", _constants(q.qbits, tuning))
        p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=0, eps=0.0))
        gpu.run(pipe, [*_upload(gpu, q), gpu.storage(x), y, p], matvec_grid(rows, tuning[1], tuning[2]))
        assert_close(gpu.read(y), q.w @ x.astype(np.float64), dot_tolerance(q, x), f"{storage} {tuning}")


@pytest.mark.parametrize("storage", ["q4", "q8"])
def test_matvec_unpack_cvt(gpu: Gpu, rng: np.random.Generator, storage: str) -> None:
    """UNPACK_CVT: codes through unpack4x8unorm conversions instead of the exponent trick (same results)."""
    rows, cols = 51, 416
    q = random_qtensor(rng, storage, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    y = _output(gpu, rows)
    pipe = gpu.pipeline(SHADER, "main", _constants(q.qbits, (16, 4, 2), UNPACK_CVT=True))
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=0, eps=0.0))
    gpu.run(pipe, [*_upload(gpu, q), gpu.storage(x), y, p], matvec_grid(rows, 4, 2))
    assert_close(gpu.read(y), q.w @ x.astype(np.float64), dot_tolerance(q, x), f"{storage} cvt")


@pytest.mark.parametrize("tuning", [(32, 4, 2), *ENGINE_TUNINGS])
def test_matvec_accumulate(gpu: Gpu, rng: np.random.Generator, tuning: tuple[int, int, int]) -> None:
    """ACCUMULATE: the residual add fused into the epilogue, y[i] += W x (o_proj and ffn_down into the hidden state)."""
    rows, cols = 70, 224
    for storage in ("q4", "q8"):
        q = random_qtensor(rng, storage, rows, cols)
        x = rng.standard_normal(cols).astype(np.float32)
        h = rng.standard_normal(rows).astype(np.float32)
        y = _output(gpu, rows, h)
        pipe = gpu.pipeline(SHADER, "main", _constants(q.qbits, tuning, ACCUMULATE=True))
        p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=0, eps=0.0))
        gpu.run(pipe, [*_upload(gpu, q), gpu.storage(x), y, p], matvec_grid(rows, tuning[1], tuning[2]))
        want = h + q.w @ x.astype(np.float64)
        assert_close(gpu.read(y), want, dot_tolerance(q, x) + EPS32 * np.abs(want), f"{storage} accumulate")


@pytest.mark.parametrize("storage", ["q4", "q8"])
@pytest.mark.parametrize("rows,cols", [(45, 576), (7, 160)])
@pytest.mark.parametrize("tuning", [(32, 4, 2), *ENGINE_TUNINGS])
def test_matvec_norm(gpu: Gpu, rng: np.random.Generator, storage: str, rows: int, cols: int,
                     tuning: tuple[int, int, int]) -> None:
    """main_norm: y = W (rmsnorm(x) * norm_w), the attention / final norm folded into q, k, v and the LM head."""
    q = random_qtensor(rng, storage, rows, cols)
    x = (rng.standard_normal(cols) * 3.0).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    eps = 1e-5
    y = _output(gpu, rows + 2)
    pipe = gpu.pipeline(SHADER, "main_norm", _constants(q.qbits, tuning))
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=2, eps=eps))
    gpu.run(pipe, [*_upload(gpu, q), gpu.storage(x), gpu.storage(nw), y, p], matvec_grid(rows, tuning[1], tuning[2]))
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    want = q.w @ xn
    # the dot product's rounding, plus a few ulps of the output for the 1/rms factor and its sum of squares
    tol = dot_tolerance(q, xn) + 8 * EPS32 * np.abs(want)
    got = gpu.read(y)
    assert_close(got[2:], want, tol, f"{storage} norm {rows}x{cols}")
    assert np.all(got[:2] == SENTINEL)


@pytest.mark.parametrize("storage", ["q4", "q8"])
@pytest.mark.parametrize("tuning", [(12, 2, 3), *ENGINE_TUNINGS])
def test_matvec_swiglu(gpu: Gpu, rng: np.random.Generator, storage: str, tuning: tuple[int, int, int]) -> None:
    """main_swiglu: y = silu(Wg x') * (Wu x'), x' = rmsnorm(x) * norm_w (ffn_norm, gate, up and SwiGLU fused)."""
    rows, cols = 83, 288
    gate = random_qtensor(rng, storage, rows, cols)
    up = random_qtensor(rng, storage, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    eps = 1e-6
    y = _output(gpu, rows + 1)
    pipe = gpu.pipeline(SHADER, "main_swiglu", _constants(gate.qbits, tuning))
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=1, eps=eps))
    buffers = [*_upload(gpu, gate), gpu.storage(x), gpu.storage(nw), *_upload(gpu, up), y, p]
    gpu.run(pipe, buffers, matvec_grid(rows, tuning[1], tuning[2]))
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    g, u = gate.w @ xn, up.w @ xn
    want = silu(g) * u
    # propagate each dot product's tolerance: d(silu(g) u) = silu'(g) u dg + silu(g) du, silu' <= 1.1
    tol_g = dot_tolerance(gate, xn) + 8 * EPS32 * np.abs(g)
    tol_u = dot_tolerance(up, xn) + 8 * EPS32 * np.abs(u)
    tol = 1.1 * np.abs(u) * tol_g + np.abs(silu(g)) * tol_u + 8 * EPS32 * np.abs(want)
    got = gpu.read(y)
    assert_close(got[1:], want, tol, f"{storage} swiglu")
    assert got[0] == SENTINEL


@pytest.mark.parametrize("storage", ["q4", "q8"])
@pytest.mark.parametrize("entry", ["main", "main_norm", "main_swiglu"])
def test_matvec_unroll_same_bits(gpu: Gpu, rng: np.random.Generator, storage: str, entry: str) -> None:
    """UNROLL (words per thread and row in one loop step) keeps each thread's sum in the same order, so every UNROLL
    gives the bits of UNROLL = 1; rows and cols leave a partial last step (q4: 44 words per row over 16 threads)."""
    rows, cols = 29, 352
    tuning = (16, 4, 2)
    w = random_qtensor(rng, storage, rows, cols)
    up = random_qtensor(rng, storage, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    p = gpu.uniform(params(SHADER, rows=rows, cols=cols, row_offset=0, eps=1e-6))
    got = {}
    for unroll in (1, 2, 3, 4):
        y = _output(gpu, rows)
        ins = {"main": [gpu.storage(x)], "main_norm": [gpu.storage(x), gpu.storage(nw)],
               "main_swiglu": [gpu.storage(x), gpu.storage(nw), *_upload(gpu, up)]}[entry]
        pipe = gpu.pipeline(SHADER, entry, _constants(w.qbits, tuning, UNROLL=unroll))
        gpu.run(pipe, [*_upload(gpu, w), *ins, y, p], matvec_grid(rows, tuning[1], tuning[2]))
        got[unroll] = gpu.read(y)
    if entry == "main":
        assert_close(got[1], w.w @ x.astype(np.float64), dot_tolerance(w, x), f"{storage} {entry}")
    for unroll in (2, 3, 4):
        assert np.array_equal(got[unroll].view(np.uint32), got[1].view(np.uint32)), f"{storage} {entry} UNROLL {unroll}"
