"""llama.cpp's K-quants (GGUF Q4_K, Q5_K, Q6_K) carried exactly as the package storages q4k, q5k, q6k, and GGUF
Q5_0 carried exactly as q8 (layouts: docs/FORMAT.md, model_prep/format.py).

A super-block is 256 consecutive values of one row (super-block s covers columns 256s .. 256s+255). GGUF stores one
block per super-block, rows one after another, so a tensor of ``rows`` x ``cols`` is ``rows * cols / 256`` blocks.
Planes are little-endian u32 arrays, row-major, so the rows [a, b) of a tensor are a slice of every plane:

- ``qweight`` u32[rows, cols/8]: the low 4 bits of code c at bits 4(c%8) of word c/8 (as q4);
- ``qhigh`` (q5k) u32[rows, cols/32]: bit 4 of code c at bit c%32 of word c/32;
  ``qhigh`` (q6k) u32[rows, cols/16]: bits 4-5 of code c at bits 2(c%16)..+1 of word c/16;
- ``super`` u32[rows, cols/256, 5]: q4k/q5k: word 0 = f16 d | f16 dmin << 16, words 1-2 = the 8 six-bit sub-block
  scales as bytes (sc[j] in byte j%4 of word 1+j/4), words 3-4 = the 8 six-bit mins likewise;
  q6k: word 0 = f16 d (high half zero), words 1-4 = the 16 int8 sub-block scales as bytes.

Values, in f32 and this order (the order gguf.quants uses, so the result is bit-exact):
q4k/q5k (sub-block j = (c%256)/32): ``(d * sc[j]) * q - (dmin * m[j])``;
q6k (sub-block j = (c%256)/16): ``(d * sc[j]) * (q - 32)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import format as fmt
from . import quant

Planes = quant.Planes
F32Array = npt.NDArray[np.float32]
U8Array = npt.NDArray[np.uint8]

QK = fmt.K_SUPER  # 256 values per super-block
# GGUF block bytes per super-block (ggml-common.h block_q4_K / block_q5_K / block_q6_K) and per Q5_0 block (32 values)
BLOCK_BYTES = {"Q4_K": 144, "Q5_K": 176, "Q6_K": 210, "Q5_0": 22}
# GGUF type -> package storage it is carried as
STORAGE = {"Q4_K": fmt.Q4K, "Q5_K": fmt.Q5K, "Q6_K": fmt.Q6K, "Q5_0": fmt.Q8}


def _blocks(ggml_type: str, blocks: bytes | npt.NDArray[np.generic], rows: int, cols: int) -> U8Array:
    """The raw bytes as u8[n blocks, block bytes] (n = rows * cols / values per block)."""
    per = 32 if ggml_type == "Q5_0" else QK
    if cols % per:
        raise ValueError(f"{ggml_type} needs a row length divisible by {per}, got {cols}")
    raw = np.frombuffer(blocks, np.uint8) if isinstance(blocks, bytes | bytearray | memoryview) \
        else np.ascontiguousarray(blocks).reshape(-1).view(np.uint8)
    n = rows * cols // per
    if raw.size != n * BLOCK_BYTES[ggml_type]:
        raise ValueError(f"{ggml_type} [{rows}, {cols}] needs {n * BLOCK_BYTES[ggml_type]} bytes, got {raw.size}")
    return raw.reshape(n, BLOCK_BYTES[ggml_type])


def _scale_min_k4(s: U8Array) -> tuple[U8Array, U8Array]:
    """GGUF's 12-byte packing of 8 six-bit scales and 8 six-bit mins (ggml get_scale_min_k4), s: u8[n, 12] ->
    (sc u8[n, 8], m u8[n, 8])."""
    d, m, md = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    sc = np.concatenate([d & 0x3F, (md & 0x0F) | ((d >> 2) & 0x30)], axis=1)
    mn = np.concatenate([m & 0x3F, (md >> 4) | ((m >> 2) & 0x30)], axis=1)
    return sc, mn


def _qs_k4(qs: U8Array) -> U8Array:
    """Q4_K/Q5_K nibbles u8[n, 128] (32-byte chunk k: low nibbles = values 64k..+31, high = 64k+32..+63) ->
    u8[n, 256] low 4 bits in natural order."""
    q = qs.reshape(-1, 4, 1, 32)
    return np.concatenate([q & 0x0F, q >> 4], axis=2).reshape(-1, QK)


def _words(b: U8Array) -> npt.NDArray[np.uint32]:
    """u8[n, 4k] -> u32[n, k] (little-endian bytes)."""
    return np.ascontiguousarray(b).view(np.uint32)


def _pack_bits(q: npt.NDArray[np.integer], bits: int) -> npt.NDArray[np.uint32]:
    """q: u8[..] of ``bits``-bit values (1 or 2), count divisible by 32/bits -> u32 words, value i at bits
    ``bits * i`` (built a byte at a time: byte k of the little-endian stream holds values 8/bits * k ..)."""
    if bits == 1:
        return np.packbits(q.reshape(-1), bitorder="little").view(np.uint32)
    v = q.reshape(-1, 4).astype(np.uint8)
    return (v[:, 0] | (v[:, 1] << 2) | (v[:, 2] << 4) | (v[:, 3] << 6)).astype(np.uint8).view(np.uint32)


def pack_q4k(blocks: bytes | npt.NDArray[np.generic], rows: int, cols: int) -> Planes:
    b = _blocks("Q4_K", blocks, rows, cols)  # [n, 144]: d f16, dmin f16, scales 12, qs 128
    sc, mn = _scale_min_k4(b[:, 4:16])
    sup = np.concatenate([_words(b[:, 0:4]), _words(sc), _words(mn)], axis=1)  # [n, 5]
    return {"qweight": quant._pack_nibbles(_qs_k4(b[:, 16:144])), "super": sup.reshape(-1)}


def pack_q5k(blocks: bytes | npt.NDArray[np.generic], rows: int, cols: int) -> Planes:
    b = _blocks("Q5_K", blocks, rows, cols)  # [n, 176]: d, dmin, scales 12, qh 32, qs 128
    sc, mn = _scale_min_k4(b[:, 4:16])
    sup = np.concatenate([_words(b[:, 0:4]), _words(sc), _words(mn)], axis=1)
    qh = b[:, 16:48]  # bit t of byte i = bit 4 of value 32t + i
    hi = (qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1  # [n, 8, 32] natural order
    return {"qweight": quant._pack_nibbles(_qs_k4(b[:, 48:176])), "qhigh": _pack_bits(hi, 1),
            "super": sup.reshape(-1)}


def pack_q6k(blocks: bytes | npt.NDArray[np.generic], rows: int, cols: int) -> Planes:
    b = _blocks("Q6_K", blocks, rows, cols)  # [n, 210]: ql 128, qh 64, scales 16 int8, d f16
    ql = b[:, 0:128].reshape(-1, 2, 1, 64)  # half h: low nibbles = values 128h..+63, high = 128h+64..+127
    lo = np.concatenate([ql & 0x0F, ql >> 4], axis=2).reshape(-1, QK)
    qh = b[:, 128:192].reshape(-1, 2, 1, 32)  # half h: bits 2t..2t+1 of byte i = bits 4-5 of value 128h + 32t + i
    hi = ((qh >> (np.arange(4, dtype=np.uint8) * 2)[None, None, :, None]) & 3).reshape(-1, QK)
    d = b[:, 208:210].copy().view(np.uint16).astype(np.uint32)  # [n, 1]
    sup = np.concatenate([d, _words(b[:, 192:208])], axis=1)
    return {"qweight": quant._pack_nibbles(lo), "qhigh": _pack_bits(hi, 2), "super": sup.reshape(-1)}


def pack_q5_0(blocks: bytes | npt.NDArray[np.generic], rows: int, cols: int) -> Planes:
    """Q5_0 (value d * (q - 16), q 0..31) as q8: scale d, code q - 16 (both exact)."""
    b = _blocks("Q5_0", blocks, rows, cols)  # [n, 22]: d f16, qh u32 (bit i = bit 4 of value i), qs 16
    qs = b[:, 6:22]
    lo = np.concatenate([qs & 0x0F, qs >> 4], axis=1)  # [n, 32]: values 0..15 then 16..31
    qh = _words(b[:, 2:6])  # [n, 1]
    hi = ((qh >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8)
    code = ((lo | (hi << 4)).astype(np.int16) - 16).astype(np.int8)
    d = b[:, 0:2].copy().view(np.float16).reshape(rows, cols // 32)
    return quant.pack_q8(code.reshape(rows, cols), d)


_PACK = {"Q4_K": pack_q4k, "Q5_K": pack_q5k, "Q6_K": pack_q6k, "Q5_0": pack_q5_0}


def pack(ggml_type: str, blocks: bytes | npt.NDArray[np.generic], rows: int, cols: int) -> Planes:
    """GGUF blocks of a [rows, cols] tensor of type ``ggml_type`` ("Q4_K", "Q5_K", "Q6_K", "Q5_0") -> the planes of
    storage ``STORAGE[ggml_type]``."""
    return _PACK[ggml_type](blocks, rows, cols)


def _f16(words: npt.NDArray[np.uint32]) -> F32Array:
    return (words & np.uint32(0xFFFF)).astype(np.uint16).view(np.float16).astype(np.float32)


def _codes(qweight: npt.NDArray[np.uint32], rows: int, cols: int) -> U8Array:
    """qweight -> u8[rows, cols/256, 256] low 4 bits of each code (byte k of the stream: codes 2k, 2k+1)."""
    b = qweight[: rows * cols // 8].view(np.uint8).reshape(-1, 1)
    return np.concatenate([b & 0x0F, b >> 4], axis=1).reshape(rows, cols // QK, QK)


def dequantize(storage: str, planes: Planes, rows: int, cols: int) -> F32Array:
    """Planes of ``rows`` x ``cols`` values -> f32[rows, cols], bit-exactly gguf.quants.dequantize of the source
    blocks. Also takes q8/q4/f32 (quant.dequantize)."""
    if storage not in fmt.K_STORAGE_TYPES:
        return quant.dequantize(storage, planes, rows, cols)
    n = rows * cols // QK
    sup = planes["super"][: n * 5].reshape(rows, cols // QK, 5)
    q = _codes(planes["qweight"], rows, cols)
    if storage == fmt.Q6K:
        hi = planes["qhigh"][: rows * cols // 16].view(np.uint8).reshape(-1, 1)  # byte k: codes 4k..4k+3
        q |= (((hi >> (np.arange(4, dtype=np.uint8) * 2)) & 3) << 4).astype(np.uint8).reshape(q.shape)
        d = _f16(sup[..., 0])  # [rows, supers]
        sc = np.ascontiguousarray(sup[..., 1:5]).view(np.int8).astype(np.float32)  # [rows, supers, 16]
        centered = (q.astype(np.int32) - 32).astype(np.float32).reshape(rows, cols // QK, 16, 16)
        return ((d[..., None] * sc)[..., None] * centered).reshape(rows, cols)
    if storage == fmt.Q5K:
        bit4 = np.unpackbits(planes["qhigh"][: rows * cols // 32].view(np.uint8), bitorder="little")  # bit c: code c
        q |= (bit4 << 4).reshape(q.shape)
    d, dmin = _f16(sup[..., 0]), _f16(sup[..., 0] >> np.uint32(16))
    sc = np.ascontiguousarray(sup[..., 1:3]).view(np.uint8).astype(np.float32)  # [rows, supers, 8]
    mn = np.ascontiguousarray(sup[..., 3:5]).view(np.uint8).astype(np.float32)
    scale = (d[..., None] * sc)[..., None]  # [rows, supers, 8, 1]
    minimum = (dmin[..., None] * mn)[..., None]
    v = scale * q.astype(np.float32).reshape(rows, cols // QK, 8, 32) - minimum
    return v.reshape(rows, cols)


def row_words(storage: str, cols: int) -> dict[str, int]:
    """u32 words one row takes in each plane of a K storage (format.plane_shapes of one row)."""
    return {p.name: p.nbytes // 4 for p in fmt.plane_shapes(storage, 1, cols)}


def slice_rows(storage: str, planes: Planes, cols: int, start: int, stop: int) -> Planes:
    """Planes of rows [start, stop) of a K-storage tensor (each plane is row-major, so a slice of each)."""
    return {name: planes[name][start * w: stop * w] for name, w in row_words(storage, cols).items()}


def dequantize_rows(storage: str, planes: Planes, rows: int, cols: int, index: npt.NDArray[np.intp]) -> F32Array:
    """Rows ``index`` of a K-storage tensor -> f32[len(index), cols], equal to ``dequantize(...)[index]``."""
    picked = {name: planes[name][: rows * w].reshape(rows, w)[index].reshape(-1)
              for name, w in row_words(storage, cols).items()}
    return dequantize(storage, picked, len(index), cols)


def random_blocks(ggml_type: str, rows: int, cols: int, rng: np.random.Generator) -> bytes:
    """Valid random GGUF blocks of a [rows, cols] tensor (tests): every code and sub-block scale random, the f16
    super-block scales finite, log-uniform over the ranges gemma-3-270m-q4_k_m.gguf's tensors span: Q4_K/Q5_K d
    3e-5..1e-3 and dmin 2e-4..6e-3 (positive, as llama.cpp writes them), Q6_K d 5e-6..5e-5 (f16 subnormals, as in
    that file) and Q5_0 d 5e-4..3e-2, both of either sign."""
    per = 32 if ggml_type == "Q5_0" else QK
    n = rows * cols // per
    b = rng.integers(0, 256, size=(n, BLOCK_BYTES[ggml_type]), dtype=np.uint8)

    def f16(lo: float, hi: float, sign: bool) -> U8Array:
        x = np.exp(rng.uniform(np.log(lo), np.log(hi), size=n)) * (rng.choice([-1.0, 1.0], size=n) if sign else 1.0)
        return x.astype(np.float16).view(np.uint8).reshape(n, 2)

    if ggml_type in ("Q4_K", "Q5_K"):
        b[:, 0:2], b[:, 2:4] = f16(3e-5, 1e-3, False), f16(2e-4, 6e-3, False)
    elif ggml_type == "Q6_K":
        b[:, 208:210] = f16(5e-6, 5e-5, True)
    else:
        b[:, 0:2] = f16(5e-4, 3e-2, True)
    return b.tobytes()
