"""numpy references and tolerances for the kernel tests.

References compute in float64 from the dequantized weights (model_prep.quant.dequantize, the CPU ground truth),
so the tolerance only has to cover the kernels' f32 arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from model_prep import quant
from model_prep.reference.forward import kv_f16

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
EPS32 = float(np.finfo(np.float32).eps)  # 2^-23
U32 = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class QTensor:
    """A quantized [rows, cols] tensor: its planes, its dequantized values, and per element the magnitude of the
    constant term the kernels add separately (q4: |min|; q8: 128 * scale from the unsigned-byte trick)."""

    storage: str
    planes: quant.Planes
    w: F64
    offset: F64

    @property
    def qbits(self) -> int:
        return 4 if self.storage == "q4" else 8


def random_qtensor(rng: np.random.Generator, storage: str, rows: int, cols: int, scale: float = 0.5) -> QTensor:
    """A random normal tensor quantized to q4 or q8 (model_prep.quant)."""
    raw = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
    planes = quant.quantize(storage, raw)
    w = quant.dequantize(storage, planes, rows, cols).astype(np.float64)
    halves = planes["scales"].view(np.float16).astype(np.float64)
    groups = rows * cols // 32
    # q4: (scale, min) per word, the min is the high half; q8: the scales in order
    offset = np.abs(halves[1::2][:groups]) if storage == "q4" else 128.0 * np.abs(halves[:groups])
    return QTensor(storage, planes, w, np.repeat(offset.reshape(rows, cols // 32), 32, axis=1))


def dot_tolerance(q: QTensor, x: npt.NDArray[np.floating[Any]]) -> F64:
    """Allowed |error| of each f32 dot product W[r, :] . x (x: [cols] or [T, cols] -> [rows] or [T, rows]).

    Summing n = cols terms in f32, each addition rounds by up to eps/2 of its partial sum; the partial sums of
    terms of rms size m grow like sqrt(k) m, so the rounding errors add up (as a random walk) to a standard deviation
    of about eps/(2 sqrt 2) n m = 0.35 eps sqrt(n) ||t||_2, whatever order the GPU sums in (blocked or tree orders
    only do better). t_c are the terms the kernel adds: (|w_c| + offset_c) |x_c|, since the q4 minimum and the q8
    bias go through a separate sum of x. We allow 2 eps sqrt(n) ||t||_2, about 6 standard deviations: far below any
    indexing or unpacking bug, which moves an output by whole terms (~|w| |x|).
    """
    terms = (np.abs(q.w) + q.offset) ** 2  # [rows, cols]
    norm = np.sqrt(np.asarray(x, np.float64) ** 2 @ terms.T)  # ||t||_2 per output
    return 2.0 * EPS32 * np.sqrt(q.w.shape[1]) * norm + 1e-30


def rmsnorm(x: F64, w: F64, eps: float) -> F64:
    """x: [..., n]; y = x / sqrt(mean(x^2) + eps) * w."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def silu(g: F64) -> F64:
    return g / (1.0 + np.exp(-g))


def assert_close(got: npt.NDArray[Any], want: F64, tol: F64 | float, what: str) -> None:
    """|got - want| <= tol elementwise, with a message naming the worst element."""
    err = np.abs(got.astype(np.float64) - want)
    bad = err > tol
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(err - tol)), err.shape)
        t = float(np.broadcast_to(np.asarray(tol, np.float64), err.shape)[i])
        raise AssertionError(f"{what}: {int(bad.sum())} of {err.size} elements off; worst at {i}: "
                             f"got {got[i]!r} want {want[i]!r} (|err| {err[i]:.3g} > tol {t:.3g})")


def dense_tolerance(w: npt.NDArray[np.float64], x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """f32 rounding allowance of W x for dense f32 weights (x: [cols] or [T, cols]): 2 eps sqrt(n) |w_c x_c|_2, as
    dot_tolerance for quantized ones."""
    norm = np.sqrt(x ** 2 @ (w ** 2).T)
    return 2.0 * EPS32 * np.sqrt(w.shape[1]) * norm + 1e-30


def kv_words(x: npt.NDArray[np.floating[Any]]) -> U32:
    """[..., d] values -> [..., d / 2] the KV cache's words (webgpu_shaders/kv_f16.wgsl): each value rounded as
    forward.py kv_f16, as f16 bits, two a word, the even element in the low half."""
    return np.ascontiguousarray(kv_f16(np.asarray(x, np.float32)).astype(np.float16)).view(np.uint32)


def kv_values(words: U32) -> F32:
    """The KV cache's words [..., n] back as f32 values [..., 2 n] (kv_words' inverse on rounded values)."""
    return np.ascontiguousarray(words, np.uint32).view(np.float16).astype(np.float32)


def assert_kv_rounds(got: F32, want: F64, tol: F64 | float, what: str) -> None:
    """``got`` (values read back from the KV cache) is kv_f16 of f32 values within ``tol`` of ``want``: rounding is
    monotone, so got lies between the roundings of want - tol and want + tol; exact where tol is 0."""
    lo = kv_f16(np.asarray(want - tol, np.float32))
    hi = kv_f16(np.asarray(want + tol, np.float32))
    bad = (got < lo) | (got > hi) | (got != kv_f16(got))
    if np.any(bad):
        i = np.unravel_index(int(np.argmax(bad)), bad.shape)
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.size} elements off; first at {i}: got {got[i]!r}, "
                             f"want the f16 of {want[i]!r} +- {float(np.broadcast_to(tol, bad.shape)[i]):.3g} "
                             f"({lo[i]!r} .. {hi[i]!r})")
