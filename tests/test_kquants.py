"""GGUF K-quants (Q4_K, Q5_K, Q6_K) and Q5_0 carried exactly: model_prep/kquants.py against llama.cpp's own
dequantization (gguf.quants)."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from model_prep import format as fmt
from model_prep import kquants, quant

TYPES = ("Q4_K", "Q5_K", "Q6_K", "Q5_0")
SHAPES = ((1, 256), (3, 512), (16, 1024), (5, 2304))


def _same_bits(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Bit for bit; nothing is forgiven (not even -0.0 against +0.0: the same f32 operations in the same order give
    the same signs, and no such difference has shown up)."""
    assert ours.dtype == np.float32 and theirs.dtype == np.float32 and ours.shape == theirs.shape
    diff = ours.view(np.uint32) != theirs.view(np.uint32)
    assert not diff.any(), f"{diff.sum()} values differ, first at {np.argwhere(diff)[0]}"


@pytest.mark.parametrize("ggml_type", TYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_pack_dequantize_is_gguf_bit_for_bit(ggml_type: str, shape: tuple[int, int]) -> None:
    rows, cols = shape
    rng = np.random.default_rng(rows * cols + len(ggml_type))
    blocks = kquants.random_blocks(ggml_type, rows, cols, rng)
    raw = np.frombuffer(blocks, np.uint8).reshape(rows, -1)
    theirs = np.asarray(gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[ggml_type]), np.float32)
    assert np.all(np.isfinite(theirs)) and 1e-3 < np.abs(theirs).mean() < 0.3  # weight-like values
    storage = kquants.STORAGE[ggml_type]
    planes = kquants.pack(ggml_type, blocks, rows, cols)
    # planes in the order and at the sizes format.plane_shapes gives
    assert [(name, planes[name].nbytes) for name in planes] == \
        [(p.name, p.nbytes) for p in fmt.plane_shapes(storage, rows, cols)] or storage == fmt.Q8
    assert all(p.dtype == np.uint32 for p in planes.values())
    _same_bits(kquants.dequantize(storage, planes, rows, cols), theirs)
    index = np.array([rows - 1, 0, rows // 2, rows - 1], np.intp)
    if storage == fmt.Q8:
        _same_bits(quant.dequantize_rows(storage, planes, rows, cols, index), theirs[index])
    else:
        _same_bits(kquants.dequantize_rows(storage, planes, rows, cols, index), theirs[index])
        # a row chunk is a slice of every plane
        part = kquants.slice_rows(storage, planes, cols, 1, rows)
        _same_bits(kquants.dequantize(storage, part, rows - 1, cols), theirs[1:])


def test_planes_follow_the_fixed_layout() -> None:
    """One hand-made Q4_K super-block: the codes and the six-bit scale/min bytes land where docs/FORMAT.md says."""
    values = np.arange(256) % 16
    block = np.zeros(144, np.uint8)
    block[0:2] = np.array([0.5], np.float16).view(np.uint8)  # d
    block[2:4] = np.array([0.25], np.float16).view(np.uint8)  # dmin
    # scales: sc[j] = j + 1 and m[j] = 40 + j, packed as ggml's get_scale_min_k4 reads them
    sc, mn = np.arange(1, 9, dtype=np.uint8), np.arange(40, 48, dtype=np.uint8)
    block[4:8] = (sc[:4] & 0x3F) | ((sc[4:] >> 4) << 6)
    block[8:12] = (mn[:4] & 0x3F) | ((mn[4:] >> 4) << 6)
    block[12:16] = (sc[4:] & 0x0F) | ((mn[4:] & 0x0F) << 4)
    qs = values.reshape(4, 2, 32)  # chunk k: values 64k..+31 in the low nibbles, 64k+32..+63 in the high
    block[16:] = (qs[:, 0] | (qs[:, 1] << 4)).reshape(-1)
    planes = kquants.pack("Q4_K", block.tobytes(), 1, 256)
    words = planes["qweight"]
    assert [(int(words[c // 8]) >> (4 * (c % 8))) & 15 for c in range(256)] == list(values)
    sup = planes["super"]
    assert sup[0] == (np.float16(0.5).view(np.uint16) | (np.uint32(np.float16(0.25).view(np.uint16)) << 16))
    assert list(sup[1:3].view(np.uint8)) == list(sc) and list(sup[3:5].view(np.uint8)) == list(mn)


def test_q5_0_codes_fit_q8() -> None:
    """Q5_0 codes q - 16 cover -16..15 and the scale is the block's d, unchanged."""
    rows, cols = 4, 256
    blocks = kquants.random_blocks("Q5_0", rows, cols, np.random.default_rng(1))
    planes = kquants.pack("Q5_0", blocks, rows, cols)
    codes = planes["qweight"].view(np.int8)
    assert codes.min() == -16 and codes.max() == 15
    d = np.frombuffer(blocks, np.uint8).reshape(-1, 22)[:, 0:2].copy().view(np.float16).reshape(-1)
    assert np.array_equal(planes["scales"].view(np.float16)[: d.size].view(np.uint16), d.view(np.uint16))


def test_gemma3_270m_tensors_bit_for_bit(gemma3_270m_gguf: Path) -> None:
    """Every Q4_K, Q6_K and Q5_0 tensor of a real llama.cpp Q4_K_M file packs and dequantizes to gguf's values."""
    reader = gguf.GGUFReader(gemma3_270m_gguf)
    seen: dict[str, int] = {}
    for t in reader.tensors:
        name = t.tensor_type.name
        if name not in kquants.STORAGE:
            continue
        cols, rows = int(t.shape[0]), int(t.shape[1])
        raw = np.asarray(t.data).reshape(rows, -1)
        theirs = np.asarray(gguf.quants.dequantize(raw, t.tensor_type), np.float32).reshape(rows, cols)
        _same_bits(kquants.dequantize(kquants.STORAGE[name], kquants.pack(name, raw, rows, cols), rows, cols), theirs)
        seen[name] = seen.get(name, 0) + 1
    assert seen == {"Q5_0": 81, "Q4_K": 27, "Q6_K": 9}
