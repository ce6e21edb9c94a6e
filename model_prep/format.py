"""The model package format: every constant and byte layout, named once.

docs/FORMAT.md describes the same thing for people; the WGSL kernels and the JS loader mirror these names.
Storage types (all little-endian, rows = output features, values along a row grouped by GROUP_SIZE):

- ``q4``: 4-bit asymmetric. value = scale * q + min, q in 0..15.
    plane ``qweight``: u32[rows, cols / 8]; element c of a row sits in word c // 8, bits 4 * (c % 8) .. +3.
    plane ``scales``:  u32[ceil(rows * cols / 32 / 2)]; group g (= row * groups_per_row + c // 32) has
                       (scale, min) as f16 packed two per u32: word g holds scale in bits 0..15, min in 16..31.
                       So one u32 per group; ``unpack2x16float(word)`` gives vec2(scale, min).
- ``q8``: 8-bit symmetric. value = scale * q, q in -128..127 (two's complement byte).
    plane ``qweight``: u32[rows, cols / 4]; element c of a row sits in word c // 4, bits 8 * (c % 4) .. +7.
    plane ``scales``:  u32[ceil(rows * cols / 32 / 2)]; scale of group g is the f16 in word g // 2,
                       low half when g is even, high half when odd (``unpack2x16float(word)[g % 2]``).
- ``f32``: plane ``data``: f32[rows, cols] (or f32[n] for vectors).
- ``q4k``, ``q5k``, ``q6k``: llama.cpp's Q4_K / Q5_K / Q6_K carried exactly, in super-blocks of 256 values of a row;
    planes ``qweight`` (low 4 bits of each code, as q4), ``qhigh`` (q5k: 1 bit a value, q6k: 2 bits), ``super``
    (5 u32 per super-block: f16 d (and dmin), the sub-block scales (and mins) as bytes). Exact layout and
    arithmetic: model_prep/kquants.py and docs/FORMAT.md.

Dequantized values are computed in f32 as ``f32(scale) * f32(q) + f32(min)`` (q8: ``f32(scale) * f32(q)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FORMAT_NAME: Final = "fieldllm-model"
FORMAT_VERSION: Final = 1  # packages that use none of the additions below are written as version 1, unchanged
# Version 2 = version 1 + config.rope_freq_factors (per-frequency RoPE divisors: Llama 3.x "llama3" scaling). Only
# packages that carry it are written as version 2, so that readers of version 1 refuse them instead of rotating with
# the wrong frequencies.
FORMAT_VERSION_ROPE_FACTORS: Final = 2
# Version 3 = version 2 + config.qk_norm (an RMSNorm on each head of q and of k before RoPE, weights
# blk.N.attn_q_norm.weight / attn_k_norm.weight: Qwen3). Only packages that carry it are written as version 3: a
# reader of version 1 or 2 would ignore the two tensors and answer wrongly.
FORMAT_VERSION_QK_NORM: Final = 3
# Version 4 = version 3 + config.rope_attn_factor (cos and sin of every RoPE angle multiplied by it: Phi-3's longrope
# attention factor). Only packages that carry it are written as version 4: a reader of 1-3 would rotate without it.
FORMAT_VERSION_ROPE_ATTN_FACTOR: Final = 4
# Version 5 = version 4 + the storages q4k / q5k / q6k (GGUF K-quants carried exactly). Only packages that store a
# tensor in one of them are written as version 5: a reader of 1-4 would not know how to read its planes.
FORMAT_VERSION_K_QUANTS: Final = 5
# Version 5 also carries Gemma 3's config keys (embedding_scale, post_norms, hidden_act, attention_scale,
# sliding_window + layer_types, rope_theta_sliding: config.ModelConfig). Only packages that set one of them are written
# as version 5 on that account: a reader of 1-4 would run them as a llama and answer wrongly.
FORMAT_VERSION_GEMMA3: Final = 5
SUPPORTED_FORMAT_VERSIONS: Final = (1, 2, 3, 4, 5)

GROUP_SIZE: Final = 32  # values per quantization group, along a row
Q4_PER_WORD: Final = 8  # 4-bit values per u32
Q8_PER_WORD: Final = 4  # 8-bit values per u32
Q4_MAX: Final = 15  # largest 4-bit code
Q8_MAX: Final = 127  # largest 8-bit code magnitude used when quantizing

PLANE_ALIGN: Final = 256  # byte alignment of every plane inside a shard (WebGPU minStorageBufferOffsetAlignment)
MAX_BINDING_BYTES: Final = 128 * 1024 * 1024  # no plane may exceed this: Android/iOS storage-binding limits
DEFAULT_SHARD_BYTES: Final = 32 * 1024 * 1024  # default cap on one shard file

MANIFEST_FILE: Final = "manifest.json"
TOKENIZER_FILE: Final = "tokenizer.json"
REPORT_FILE: Final = "report.json"
SHARD_PATTERN: Final = "weights-{:05d}.bin"

Q4: Final = "q4"
Q8: Final = "q8"
F32: Final = "f32"
STORAGE_TYPES: Final = (Q4, Q8, F32)  # what prepare quantizes into (--weights)
Q4K: Final = "q4k"
Q5K: Final = "q5k"
Q6K: Final = "q6k"
K_STORAGE_TYPES: Final = (Q4K, Q5K, Q6K)  # carried from GGUF only, never quantized into (format version 5)
ALL_STORAGE_TYPES: Final = STORAGE_TYPES + K_STORAGE_TYPES
K_SUPER: Final = 256  # values per K-quant super-block, along a row

ROPE_INTERLEAVED: Final = "interleaved"  # pairs (2i, 2i+1): GGUF llama (llama.cpp permutes Q/K rows)
ROPE_HALF: Final = "half"  # pairs (i, i + d/2): Hugging Face rotate-half, GGUF qwen2 and qwen3
ROPE_LAYOUTS: Final = (ROPE_INTERLEAVED, ROPE_HALF)

ARCHITECTURES: Final = ("llama", "qwen2", "qwen3", "phi3", "gemma3")

ACT_SILU: Final = "silu"  # config.hidden_act: MLP down(silu(gate) * up) (SwiGLU), the default
ACT_GELU_TANH: Final = "gelu_tanh"  # down(gelu_tanh(gate) * up) (GeGLU; PyTorch gelu approximate="tanh"): gemma3
HIDDEN_ACTS: Final = (ACT_SILU, ACT_GELU_TANH)
LAYER_SLIDING: Final = "sliding"  # config.layer_types: attends to the last config.sliding_window positions
LAYER_FULL: Final = "full"  # attends to every earlier position
LAYER_TYPES: Final = (LAYER_SLIDING, LAYER_FULL)


@dataclass(frozen=True)
class PlaneShape:
    """Byte size of each plane of one row-chunk of a tensor."""

    name: str
    nbytes: int


def groups_per_row(cols: int) -> int:
    return cols // GROUP_SIZE


def quantizable(cols: int) -> bool:
    """A row can be stored at q4/q8 only when it splits into whole groups."""
    return cols % GROUP_SIZE == 0


def plane_shapes(storage: str, rows: int, cols: int) -> list[PlaneShape]:
    """Planes (in file order) for ``rows`` rows of a ``cols``-wide tensor stored as ``storage``."""
    if storage == F32:
        return [PlaneShape("data", rows * cols * 4)]
    if storage in K_STORAGE_TYPES:
        if cols % K_SUPER:
            raise ValueError(f"{storage} needs a row length divisible by {K_SUPER}, got {cols}")
        qhigh = {Q4K: [], Q5K: [PlaneShape("qhigh", rows * cols // 8)], Q6K: [PlaneShape("qhigh", rows * cols // 4)]}
        # qweight: 4 bits a value; qhigh: 1 (q5k) or 2 (q6k) bits a value; super: 5 u32 per super-block
        return [PlaneShape("qweight", rows * cols // 2), *qhigh[storage],
                PlaneShape("super", rows * (cols // K_SUPER) * 5 * 4)]
    if not quantizable(cols):
        raise ValueError(f"{storage} needs a row length divisible by {GROUP_SIZE}, got {cols}")
    groups = rows * groups_per_row(cols)
    if storage == Q4:
        # one u32 (scale, min) per group
        return [PlaneShape("qweight", rows * cols // 2), PlaneShape("scales", groups * 4)]
    if storage == Q8:
        # f16 scales, two per u32; an odd count is padded with a zero half
        return [PlaneShape("qweight", rows * cols), PlaneShape("scales", (groups + 1) // 2 * 4)]
    raise ValueError(f"unknown storage type {storage!r}; known: {', '.join(ALL_STORAGE_TYPES)}")


def row_bytes(storage: str, cols: int) -> int:
    """Bytes one row costs across all planes (ignoring alignment and the q8 odd-group pad)."""
    if storage == F32:
        return cols * 4
    if storage == Q4:
        return cols // 2 + groups_per_row(cols) * 4
    if storage == Q8:
        return cols + groups_per_row(cols) * 2
    if storage in K_STORAGE_TYPES:
        return sum(p.nbytes for p in plane_shapes(storage, 1, cols))
    raise ValueError(f"unknown storage type {storage!r}")


def align(offset: int, to: int = PLANE_ALIGN) -> int:
    return (offset + to - 1) // to * to
