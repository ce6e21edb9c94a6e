"""scripts/matmul_q4_i8.wgsl (a measurement kernel, not the engine's): activations rounded to int8 per 32 columns,
then Y = X W^T for q4 weights with exact integer dot products (dot4I8Packed) inside each group."""

from __future__ import annotations

import math

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import matmul_grid
from .reference import random_qtensor

SHADER = "../scripts/matmul_q4_i8.wgsl"
SENTINEL = -7.25
# register tiles of every shape the kernel allows, groups per stage that do and do not divide the groups
TUNINGS = {"16x8 1x1 gs2": {"WX": 16, "WY": 8, "RV": 1, "TV": 1, "GS": 2},
           "8x8 2x2 gs3": {"WX": 8, "WY": 8, "RV": 2, "TV": 2, "GS": 3},
           "8x4 1x2 gs1": {"WX": 8, "WY": 4, "RV": 1, "TV": 2, "GS": 1},
           "4x8 2x1 gs4": {"WX": 4, "WY": 8, "RV": 2, "TV": 1, "GS": 4}}


def uniform(gpu: Gpu, rows: int, cols: int, row_offset: int, tokens: int, y_stride: int) -> object:
    """Params: five u32 (rows, cols, row_offset, tokens, y_stride), padded to 32 bytes."""
    return gpu.uniform(np.array([rows, cols, row_offset, tokens, y_stride, 0, 0, 0], np.uint32).tobytes())


def quantize(gpu: Gpu, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[object]]:
    """The kernel's quantize entry on x [T, cols]: xq int8 [T, cols] in column order, xs f32 [T, cols / 32, 2] (d, s),
    and the two buffers it wrote (main's bindings 2 and 3)."""
    tokens, cols = x.shape
    xq, xs = gpu.zeros(tokens * cols), gpu.zeros(8 * tokens * cols // 32)
    gpu.run(gpu.pipeline(SHADER, "quantize"), [gpu.storage(x), xq, xs, uniform(gpu, 0, cols, 0, tokens, 0)],
            (math.ceil(tokens * cols // 32 / 64), 1, 1))
    packed = gpu.read(xq, np.int8).reshape(tokens, cols // 8, 2, 4)  # [T, chunk, even/odd word, byte]
    values = np.empty((tokens, cols // 8, 8), np.int8)
    values[:, :, 0::2], values[:, :, 1::2] = packed[:, :, 0], packed[:, :, 1]
    return values.reshape(tokens, cols), gpu.read(xs).reshape(tokens, cols // 32, 2), [xq, xs]


@pytest.mark.parametrize("tokens,cols", [(1, 32), (5, 96), (70, 256)])
def test_quantize(gpu: Gpu, rng: np.random.Generator, tokens: int, cols: int) -> None:
    """d = max|x| / 127 per token and group, xq the nearest integer to x / d, s = d sum(xq); a zero group is zeros."""
    x = (rng.standard_normal((tokens, cols)) * rng.uniform(0.01, 100.0, (tokens, 1))).astype(np.float32)
    x[0, :32] = 0.0
    xq, xs, _ = quantize(gpu, x)
    g = x.reshape(tokens, cols // 32, 32).astype(np.float64)
    d = np.abs(g).max(axis=2) / 127.0
    np.testing.assert_allclose(xs[..., 0], d, rtol=1e-6)
    q = xq.reshape(tokens, cols // 32, 32).astype(np.float64)
    assert np.abs(q).max() <= 127
    # nearest integer: within half a step (and a little for f32's 127 / amax)
    assert np.all(np.abs(q * d[..., None] - g) <= d[..., None] * (0.5 + 1e-5)), "not rounded to nearest"
    np.testing.assert_allclose(xs[..., 1], d * q.sum(axis=2), rtol=1e-6, atol=1e-30)
    assert np.all(xq[0, :32] == 0) and xs[0, 0, 0] == 0.0


@pytest.mark.parametrize("tuning", sorted(TUNINGS))
@pytest.mark.parametrize("rows,cols,tokens", [(37, 96, 1), (70, 160, 5), (129, 576, 33), (3, 32, 2), (200, 64, 70)])
def test_matmul_i8(gpu: Gpu, rng: np.random.Generator, tuning: str, rows: int, cols: int, tokens: int) -> None:
    """Against numpy's sum over groups of scale d (q . xq) + min s, from the kernel's own quantized X (so the test
    checks the product, not the rounding); and within the rounding's error of the f32 product."""
    t = TUNINGS[tuning]
    q = random_qtensor(rng, "q4", rows, cols)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    xq_ref, xs_ref, (xq_buf, xs_buf) = quantize(gpu, x)
    offset, stride = 2, rows + 5  # this chunk is rows [2, 2 + rows) of a wider output
    y = gpu.storage(np.full(tokens * stride, SENTINEL, np.float32))
    grid = matmul_grid(rows, tokens, t)  # the same tiles as matmul.wgsl
    weight = [gpu.storage(q.planes["qweight"]), gpu.storage(q.planes["scales"])]
    p = uniform(gpu, rows, cols, offset, tokens, stride)
    gpu.run(gpu.pipeline(SHADER, "main", t), [*weight, xq_buf, xs_buf, y, p], grid)
    got = gpu.read(y).reshape(tokens, stride)

    halves = q.planes["scales"].view(np.float16).astype(np.float64).reshape(rows, cols // 32, 2)  # (scale, min)
    codes = np.rint((q.w - np.repeat(halves[..., 1], 32, axis=1)) / np.repeat(halves[..., 0], 32, axis=1))
    dots = np.einsum("rgi,tgi->trg", codes.reshape(rows, cols // 32, 32),
                     xq_ref.reshape(tokens, cols // 32, 32).astype(np.float64))
    want = (dots * halves[None, :, :, 0] * xs_ref[:, None, :, 0]).sum(axis=2) + \
        (halves[None, :, :, 1] * xs_ref[:, None, :, 1]).sum(axis=2)
    scale = np.abs(dots * halves[None, :, :, 0] * xs_ref[:, None, :, 0]).sum(axis=2) + \
        np.abs(halves[None, :, :, 1] * xs_ref[:, None, :, 1]).sum(axis=2)
    err = np.abs(got[:, offset:offset + rows] - want)
    assert np.all(err <= 1e-5 * scale + 1e-30), f"{tuning} {rows}x{cols} T={tokens}: max error {err.max()}"
    assert np.all(np.delete(got, np.s_[offset:offset + rows], axis=1) == SENTINEL), "wrote outside the chunk"
    # the rounding's cost against the f32 product: each x moves by at most d / 2, so |dy| <= sum |w| d / 2
    exact = x.astype(np.float64) @ q.w.T
    bound = (np.abs(q.w)[None] * np.repeat(xs_ref[..., 0], 32, axis=1)[:, None, :] / 2).sum(axis=2)
    assert np.all(np.abs(got[:, offset:offset + rows] - exact) <= bound * (1 + 1e-4) + 1e-5 * scale)
