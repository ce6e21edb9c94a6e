"""The byte layout of docs/FORMAT.md, pinned bit by bit, and quantization round trips."""

from __future__ import annotations

import numpy as np

from model_prep import format as fmt
from model_prep import quant


def test_q4_layout_bits() -> None:
    q = (np.arange(64, dtype=np.uint8) % 16).reshape(1, 64)  # element c has code c % 16
    scale = np.array([[1.0, 2.0]], np.float16)
    minimum = np.array([[-0.5, 3.0]], np.float16)
    planes = quant.pack_q4(q, scale, minimum)
    # element c in word c // 8 at bits 4 * (c % 8)
    assert planes["qweight"].tolist() == [0x76543210, 0xFEDCBA98] * 4
    # one u32 per group: scale in the low half, min in the high half (unpack2x16float -> (scale, min))
    assert planes["scales"].tolist() == [0x3C00 | (0xB800 << 16), 0x4000 | (0x4200 << 16)]
    want = q.astype(np.float32).reshape(2, 32) * scale.T.astype(np.float32) + minimum.T.astype(np.float32)
    assert np.array_equal(quant.dequantize(fmt.Q4, planes, 1, 64), want.reshape(1, 64))


def test_q8_layout_bits() -> None:
    q = np.array([[1, -1, 2, -128] + [0] * 28 + [127] * 32 + [3] * 32], np.int8)  # 3 groups: odd count
    scale = np.array([[0.5, 1.0, 2.0]], np.float16)
    planes = quant.pack_q8(q, scale)
    assert planes["qweight"][0] == 0x80_02_FF_01  # element c in word c // 4 at bits 8 * (c % 4), two's complement
    assert planes["scales"].tolist() == [0x3800 | (0x3C00 << 16), 0x4000]  # two per word, zero-padded
    assert [p.nbytes for p in fmt.plane_shapes(fmt.Q8, 1, 96)] == [planes["qweight"].nbytes, planes["scales"].nbytes]
    got = quant.dequantize(fmt.Q8, planes, 1, 96)
    assert np.array_equal(got, (q.reshape(3, 32) * scale.T.astype(np.float32)).reshape(1, 96))


def test_quantize_round_trip_errors() -> None:
    x = np.random.default_rng(1).standard_normal((48, 160)).astype(np.float32)
    for storage, bound in ((fmt.Q4, 0.5), (fmt.Q8, 0.02)):
        planes = quant.quantize(storage, x)
        assert [p.nbytes for p in fmt.plane_shapes(storage, 48, 160)] == [planes[k].nbytes for k in planes]
        err = np.abs(quant.dequantize(storage, planes, 48, 160) - x)
        assert err.max() < bound, storage
    const = np.full((2, 32), 0.25, np.float32)  # zero range: exact, no NaN
    assert np.array_equal(quant.dequantize(fmt.Q4, quant.quantize_q4(const), 2, 32), const)
    assert np.array_equal(quant.dequantize(fmt.Q8, quant.quantize_q8(np.zeros((1, 32), np.float32)), 1, 32),
                          np.zeros((1, 32), np.float32))


def test_slices_are_self_contained_chunks() -> None:
    x = np.random.default_rng(2).standard_normal((7, 96)).astype(np.float32)
    for storage in fmt.STORAGE_TYPES:
        planes = quant.quantize(storage, x)
        whole = quant.dequantize(storage, planes, 7, 96)
        part = quant.slice_rows(storage, planes, 96, 3, 6)
        assert [p.nbytes for p in fmt.plane_shapes(storage, 3, 96)] == [part[k].nbytes for k in part]
        assert np.array_equal(quant.dequantize(storage, part, 3, 96), whole[3:6])
