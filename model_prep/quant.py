"""Quantize, pack and unpack tensors in the package's storage types (layouts: model_prep/format.py).

A packed tensor is a dict of planes, plane name -> u32 numpy array, in the order ``format.plane_shapes`` gives.
GGUF Q4_0, Q4_1 and Q8_0 blocks are repacked without touching their values, so dequantizing our planes gives
bit-exactly what ``gguf.quants.dequantize`` gives (K-quants and Q5_0: model_prep/kquants.py; unpacking here hands
the K storages to it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from . import format as fmt
from .errors import InputError

Planes = dict[str, npt.NDArray[np.uint32]]
F32Array = npt.NDArray[np.float32]

_F16_MAX = float(np.finfo(np.float16).max)
_Q4_SHIFTS = (np.arange(fmt.Q4_PER_WORD, dtype=np.uint32) * 4).astype(np.uint32)  # [8] bit offsets in a word


def _pack_nibbles(q: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint32]:
    """q: u8[rows, cols] in 0..15 -> u32[rows * cols/8], element c at bits 4*(c%8) of word c//8.
    Little-endian: byte k of the stream holds elements 2k (low nibble) and 2k+1 (high nibble)."""
    pairs = q.reshape(-1, 2)
    return (pairs[:, 0] | (pairs[:, 1] << np.uint8(4))).view(np.uint32)


def _pack_bytes(q: npt.NDArray[np.int8]) -> npt.NDArray[np.uint32]:
    """q: i8[rows, cols] -> u32[rows, cols/4]; little-endian bytes are exactly the row-major int8 array."""
    return np.ascontiguousarray(q).view(np.uint32).reshape(-1)


def _pack_f16_pairs(lo: npt.NDArray[np.float16], hi: npt.NDArray[np.float16]) -> npt.NDArray[np.uint32]:
    """Two f16 arrays of one shape -> u32 words with lo in bits 0..15 and hi in 16..31 (unpack2x16float order)."""
    return lo.view(np.uint16).astype(np.uint32) | (hi.view(np.uint16).astype(np.uint32) << np.uint32(16))


def _pack_f16_seq(values: npt.NDArray[np.float16]) -> npt.NDArray[np.uint32]:
    """f16[n] -> u32[ceil(n/2)], value k in word k//2 (low half for even k); odd n padded with +0."""
    flat = values.reshape(-1)
    if flat.size % 2:
        flat = np.concatenate([flat, np.zeros(1, np.float16)])
    return flat.view(np.uint32)


def _checked_f16(x: npt.NDArray[np.floating], what: str) -> npt.NDArray[np.float16]:
    if not np.all(np.isfinite(x)):
        raise InputError(f"{what} has NaN or infinite values; the checkpoint is damaged")
    if np.any(np.abs(x) > _F16_MAX):
        raise InputError(f"{what} needs values above the f16 range ({_F16_MAX:g}); keep this tensor as f32")
    return x.astype(np.float16)


def pack_q4(q: npt.NDArray[np.uint8], scale: npt.NDArray[np.float16], minimum: npt.NDArray[np.float16]) -> Planes:
    """q: u8[rows, cols] codes; scale, minimum: f16[rows, cols/32]."""
    return {"qweight": _pack_nibbles(q), "scales": _pack_f16_pairs(scale, minimum).reshape(-1)}


def pack_q8(q: npt.NDArray[np.int8], scale: npt.NDArray[np.float16]) -> Planes:
    """q: i8[rows, cols] codes; scale: f16[rows, cols/32]."""
    return {"qweight": _pack_bytes(q), "scales": _pack_f16_seq(scale)}


def _grouped(x: F32Array) -> F32Array:
    rows, cols = x.shape
    return x.reshape(rows, cols // fmt.GROUP_SIZE, fmt.GROUP_SIZE)


def _q4_codes(g: F32Array, scale: F32Array, minimum: F32Array) -> F32Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.rint((g - minimum[..., None]) / scale[..., None])
    return np.clip(np.nan_to_num(q, nan=0.0, posinf=0.0, neginf=0.0), 0, fmt.Q4_MAX)


def quantize_q4(x: F32Array, name: str = "tensor") -> Planes:
    """Asymmetric 4-bit, group 32: min-max start, then one least-squares refit of (scale, min) per group,
    keeping whichever of the two gives the smaller squared error. Codes are chosen against the f16-rounded
    scale and min, so what is stored is what was optimized."""
    g = _grouped(np.asarray(x, np.float32))  # [rows, groups, 32]
    lo, hi = g.min(axis=2), g.max(axis=2)
    scale = _checked_f16((hi - lo) / fmt.Q4_MAX, name).astype(np.float32)
    minimum = _checked_f16(lo, name).astype(np.float32)
    q = _q4_codes(g, scale, minimum)
    err = np.sum((q * scale[..., None] + minimum[..., None] - g) ** 2, axis=2)

    # least squares for y ~ s*q + m given the codes q
    n = np.float32(fmt.GROUP_SIZE)
    sq, sy = q.sum(axis=2), g.sum(axis=2)
    sqq, sqy = (q * q).sum(axis=2), (q * g).sum(axis=2)
    det = n * sqq - sq * sq
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(det > 0, (n * sqy - sq * sy) / det, scale)
        m2 = np.where(det > 0, (sy - s2 * sq) / n, minimum)
    s2 = np.clip(s2, 0, _F16_MAX).astype(np.float16).astype(np.float32)
    m2 = np.clip(m2, -_F16_MAX, _F16_MAX).astype(np.float16).astype(np.float32)
    q2 = _q4_codes(g, s2, m2)
    err2 = np.sum((q2 * s2[..., None] + m2[..., None] - g) ** 2, axis=2)
    better = err2 < err
    q = np.where(better[..., None], q2, q)
    scale = np.where(better, s2, scale)
    minimum = np.where(better, m2, minimum)
    rows, cols = x.shape
    return pack_q4(q.astype(np.uint8).reshape(rows, cols), scale.astype(np.float16), minimum.astype(np.float16))


def quantize_q8(x: F32Array, name: str = "tensor") -> Planes:
    """Symmetric 8-bit, group 32: scale = max|x| / 127 (rounded to f16), q = round(x / scale)."""
    g = _grouped(np.asarray(x, np.float32))
    scale = _checked_f16(np.abs(g).max(axis=2) / fmt.Q8_MAX, name).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.nan_to_num(np.rint(g / scale[..., None]), nan=0.0, posinf=0.0, neginf=0.0)
    q = np.clip(q, -128, 127).astype(np.int8)
    rows, cols = x.shape
    return pack_q8(q.reshape(rows, cols), scale.astype(np.float16))


def pack_f32(x: npt.NDArray[np.floating]) -> Planes:
    return {"data": np.ascontiguousarray(x, dtype=np.float32).reshape(-1).view(np.uint32)}


def quantize(storage: str, x: F32Array, name: str = "tensor") -> Planes:
    if storage == fmt.Q4:
        return quantize_q4(x, name)
    if storage == fmt.Q8:
        return quantize_q8(x, name)
    if storage == fmt.F32:
        return pack_f32(x)
    raise ValueError(f"unknown storage type {storage!r}")


# --- GGUF blocks carried over as they are -------------------------------------------------------------------------

def _gguf_blocks(raw: npt.NDArray[np.uint8], cols: int, block_bytes: int) -> npt.NDArray[np.uint8]:
    """raw: u8[rows, cols/32 * block_bytes] (gguf's row layout) -> u8[rows, groups, block_bytes]."""
    rows = raw.shape[0]
    return np.ascontiguousarray(raw).reshape(rows, cols // fmt.GROUP_SIZE, block_bytes)


# Repacking ggml nibbles works on u64 lanes (8 bytes of nibbles at once) in slices of this many groups, so that the
# temporaries stay in the CPU cache: 16k groups = 256 KiB per temporary. (SmolLM2: 0.16 s -> 0.07 s for 3.3M groups.)
_REPACK_GROUPS = 1 << 14
_U64 = np.uint64
_LOW_NIBBLES = _U64(0x0F0F_0F0F_0F0F_0F0F)


def _gather_nibbles(x: npt.NDArray[np.uint64], tmp: npt.NDArray[np.uint64]) -> None:
    """In place: each byte j of x holds a value in its low nibble -> the 8 values as nibbles 0..7 of the low 32 bits
    (nibble j = byte j's value), high 32 bits zero. Three halving steps: bytes -> 16-bit lanes -> 32-bit lanes."""
    for shift, keep in ((4, 0x00FF_00FF_00FF_00FF), (8, 0x0000_FFFF_0000_FFFF), (16, 0x0000_0000_FFFF_FFFF)):
        np.right_shift(x, _U64(shift), out=tmp)
        x |= tmp
        x &= _U64(keep)


def _repack_gguf_nibbles(blocks: npt.NDArray[np.uint8], start: int,
                         qweight: npt.NDArray[np.uint32] | None = None) -> npt.NDArray[np.uint32]:
    """blocks: u8[groups, block_bytes] ggml blocks whose 16 bytes of nibbles start at byte ``start``, in ggml order
    (byte j: low nibble = element j, high nibble = element j+16) -> qweight u32[groups * 4] in our order (element e
    of a group at bits 4*(e%8) of word e//8), written into ``qweight`` when given. Little-endian, as the package
    format is."""
    groups = blocks.shape[0]
    if qweight is None:
        qweight = np.empty(groups * 4, np.uint32)
    out = qweight.view(_U64).reshape(groups, 2)  # per group: words 0|1 (elements 0..15), words 2|3 (16..31)
    n = min(groups, _REPACK_GROUPS)
    lo, hi, tmp = np.empty((n, 2), _U64), np.empty((n, 2), _U64), np.empty((n, 2), _U64)
    for g in range(0, groups, _REPACK_GROUPS):
        k = min(_REPACK_GROUPS, groups - g)
        lo_k, hi_k, tmp_k = lo[:k], hi[:k], tmp[:k]
        qs = blocks[g: g + k, start: start + 16].view(_U64)  # [k, 2]: nibble bytes 0..7 and 8..15
        np.bitwise_and(qs, _LOW_NIBBLES, out=lo_k)  # byte j: element j (lane 0), element 8+j (lane 1)
        np.right_shift(qs, _U64(4), out=hi_k)
        hi_k &= _LOW_NIBBLES  # byte j: element 16+j (lane 0), element 24+j (lane 1)
        _gather_nibbles(lo_k, tmp_k)
        _gather_nibbles(hi_k, tmp_k)
        np.left_shift(lo_k[:, 1], _U64(32), out=out[g: g + k, 0])
        out[g: g + k, 0] |= lo_k[:, 0]
        np.left_shift(hi_k[:, 1], _U64(32), out=out[g: g + k, 1])
        out[g: g + k, 1] |= hi_k[:, 0]
    return qweight


def from_gguf_q4_0(raw: npt.NDArray[np.uint8], cols: int, out: Planes | None = None) -> Planes:
    """Q4_0 block: f16 d, 16 bytes of nibbles; value d * (q - 8) == d * q + (-8 d), exact in f16 and f32."""
    b = _gguf_blocks(raw, cols, 18).reshape(-1, 18)  # [groups, 18]
    d = np.ascontiguousarray(b[:, 0:2].view(np.float16)[:, 0])
    minimum = (d.astype(np.float32) * np.float32(-8)).astype(np.float16)
    if np.any(~np.isfinite(minimum) & np.isfinite(d)):
        raise InputError("a Q4_0 block scale is too large to store -8*scale as f16; re-quantize from f16 or f32")
    planes = {"qweight": _repack_gguf_nibbles(b, 2, None if out is None else out["qweight"]),
              "scales": _pack_f16_pairs(d, minimum)}
    if out is not None:
        np.copyto(out["scales"], planes["scales"])
    return planes if out is None else out


def from_gguf_q4_1(raw: npt.NDArray[np.uint8], cols: int, out: Planes | None = None) -> Planes:
    """Q4_1 block: f16 d, f16 m, 16 bytes of nibbles; value d * q + m. ``out``: planes to write into (e.g. views of
    a shard), sparing a copy; from_gguf_q4_0 and from_gguf_q8_0 take it too."""
    b = _gguf_blocks(raw, cols, 20).reshape(-1, 20)  # [groups, 20]
    # the scales word is d in bits 0..15 and m in 16..31: exactly the block's first 4 bytes, little-endian
    # (copied as u32 items: a strided u8 copy took 6x longer)
    words = b[:, 0:4].view(np.uint32)[:, 0]
    scales = np.ascontiguousarray(words) if out is None else out["scales"]
    if out is not None:
        np.copyto(scales, words)
    return {"qweight": _repack_gguf_nibbles(b, 4, None if out is None else out["qweight"]), "scales": scales}


def from_gguf_q8_0(raw: npt.NDArray[np.uint8], cols: int, out: Planes | None = None) -> Planes:
    """Q8_0 block: f16 d, 32 int8; value d * q."""
    b = _gguf_blocks(raw, cols, 34)
    d = np.ascontiguousarray(b[..., 0:2].view(np.float16)[..., 0])
    if out is None:
        q = b[..., 2:].copy().view(np.int8).reshape(raw.shape[0], cols)
        return pack_q8(q, d)
    np.copyto(out["qweight"].view(np.int8).reshape((*b.shape[:2], fmt.GROUP_SIZE)), b[..., 2:].view(np.int8))
    np.copyto(out["scales"], _pack_f16_seq(d))
    return out


# --- unpacking (the numpy engine, the report, and the kernel tests) -------------------------------------------------

def _f16_halves(words: npt.NDArray[np.uint32]) -> tuple[F32Array, F32Array]:
    lo = (words & np.uint32(0xFFFF)).astype(np.uint16).view(np.float16).astype(np.float32)
    hi = (words >> np.uint32(16)).astype(np.uint16).view(np.float16).astype(np.float32)
    return lo, hi


def dequantize(storage: str, planes: Planes, rows: int, cols: int) -> F32Array:
    """Planes of ``rows`` x ``cols`` values -> f32[rows, cols] (f32 storage of a vector: pass rows=1)."""
    if storage in fmt.K_STORAGE_TYPES:
        from . import kquants  # it builds on this module
        return kquants.dequantize(storage, planes, rows, cols)
    if storage == fmt.F32:
        return planes["data"].view(np.float32)[: rows * cols].reshape(rows, cols).copy()
    words, scales = _row_planes(storage, planes, rows, cols)
    return _dequantize_rows(storage, words, scales, cols)


def dequantize_rows(storage: str, planes: Planes, rows: int, cols: int, index: npt.NDArray[np.intp]) -> F32Array:
    """Rows ``index`` (any order, repeats allowed) of planes of ``rows`` x ``cols`` values -> f32[len(index), cols],
    equal to ``dequantize(...)[index]`` without unpacking the other rows (an embedding lookup)."""
    if storage in fmt.K_STORAGE_TYPES:
        from . import kquants
        return kquants.dequantize_rows(storage, planes, rows, cols, index)
    if storage == fmt.F32:
        return planes["data"].view(np.float32)[: rows * cols].reshape(rows, cols)[index]
    words, scales = _row_planes(storage, planes, rows, cols)
    return _dequantize_rows(storage, words[index], scales[index], cols)


def _row_planes(storage: str, planes: Planes, rows: int, cols: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(codes [rows, words per row] as u32 words (q4) or int8 (q8), scales [rows, groups per row] as u32 (q4:
    scale and min halves) or f16 (q8)): views of the planes, nothing unpacked yet."""
    gpr = fmt.groups_per_row(cols)
    if storage == fmt.Q4:
        words = planes["qweight"][: rows * cols // fmt.Q4_PER_WORD].reshape(rows, cols // fmt.Q4_PER_WORD)
        return words, planes["scales"][: rows * gpr].reshape(rows, gpr)
    if storage == fmt.Q8:
        q = planes["qweight"][: rows * cols // fmt.Q8_PER_WORD].view(np.int8).reshape(rows, cols)
        return q, planes["scales"].view(np.float16)[: rows * gpr].reshape(rows, gpr)
    raise ValueError(f"unknown storage type {storage!r}")


def _dequantize_rows(storage: str, codes: npt.NDArray[Any], scales: npt.NDArray[Any], cols: int) -> F32Array:
    """``_row_planes``' two arrays (or some of their rows) -> f32[rows, cols]: f32(scale) * f32(q) + f32(min)."""
    rows = codes.shape[0]
    if storage == fmt.Q4:
        q = ((codes[..., None] >> _Q4_SHIFTS) & np.uint32(0xF)).astype(np.float32)
        scale, minimum = _f16_halves(scales.reshape(-1))
        g = q.reshape(rows, -1, fmt.GROUP_SIZE)
        out = g * scale.reshape(rows, -1, 1) + minimum.reshape(rows, -1, 1)
        return out.reshape(rows, cols)
    q8 = codes.reshape(-1).astype(np.float32)
    scale = scales.reshape(-1).astype(np.float32)
    return (q8.reshape(rows, -1, fmt.GROUP_SIZE) * scale.reshape(rows, -1, 1)).reshape(rows, cols)


def slice_rows(storage: str, planes: Planes, cols: int, start: int, stop: int) -> Planes:
    """Planes of rows [start, stop) of a packed tensor, each chunk self-contained (its own group numbering)."""
    if storage in fmt.K_STORAGE_TYPES:
        from . import kquants
        return kquants.slice_rows(storage, planes, cols, start, stop)
    if storage == fmt.F32:
        return {"data": planes["data"][start * cols: stop * cols]}
    per_row = cols // (fmt.Q4_PER_WORD if storage == fmt.Q4 else fmt.Q8_PER_WORD)
    qweight = planes["qweight"][start * per_row: stop * per_row]
    gpr = fmt.groups_per_row(cols)
    if storage == fmt.Q4:
        return {"qweight": qweight, "scales": planes["scales"][start * gpr: stop * gpr]}
    scales16 = planes["scales"].view(np.float16)[start * gpr: stop * gpr]
    return {"qweight": qweight, "scales": _pack_f16_seq(scales16)}
