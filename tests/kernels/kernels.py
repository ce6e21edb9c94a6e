"""Host-side description of each WGSL kernel: its Params uniform layout and its dispatch grid.

The JS engine mirrors these (one declaration per uniform layout); test_params.py checks every layout against the
``struct Params`` of its shader, field by field, and its byte size against the compiled pipeline.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Literal

from .gpu import grid_1d

Scalar = Literal["u32", "f32"]
_FORMAT: dict[Scalar, str] = {"u32": "I", "f32": "f"}


@dataclass(frozen=True)
class Field:
    name: str
    kind: Scalar


@dataclass(frozen=True)
class ParamsLayout:
    """A uniform struct of 4-byte scalars, in declaration order (WGSL lays these out densely: size = 4 * fields)."""

    shader: str
    fields: tuple[Field, ...]

    @property
    def size(self) -> int:
        return 4 * len(self.fields)

    def pack(self, **values: float) -> bytes:
        missing = {f.name for f in self.fields} ^ set(values)
        if missing:
            raise ValueError(f"{self.shader} Params: missing or unknown fields {sorted(missing)}")
        fmt = "<" + "".join(_FORMAT[f.kind] for f in self.fields)
        return struct.pack(fmt, *(int(values[f.name]) if f.kind == "u32" else float(values[f.name])
                                  for f in self.fields))


def _layout(shader: str, *fields: str) -> ParamsLayout:
    """fields as "name:kind"."""
    parsed = [f.split(":") for f in fields]
    assert all(k in _FORMAT for _, k in parsed), fields
    return ParamsLayout(shader, tuple(Field(n, k) for n, k in parsed))  # type: ignore[arg-type]


_MATVEC = ("rows:u32", "cols:u32", "row_offset:u32", "eps:f32")
_MATMUL = ("rows:u32", "cols:u32", "row_offset:u32", "tokens:u32", "y_stride:u32")
_EMBED = ("row_start:u32", "rows:u32", "cols:u32", "tokens:u32")

PARAMS: dict[str, ParamsLayout] = {
    "matvec.wgsl": _layout("matvec.wgsl", *_MATVEC),
    "matvec_f32.wgsl": _layout("matvec_f32.wgsl", *_MATVEC),
    "matmul.wgsl": _layout("matmul.wgsl", *_MATMUL),
    "matmul_f32.wgsl": _layout("matmul_f32.wgsl", *_MATMUL),
    "embed.wgsl": _layout("embed.wgsl", *_EMBED),
    "embed_f32.wgsl": _layout("embed_f32.wgsl", *_EMBED),
    "rope_table.wgsl": _layout("rope_table.wgsl", "tokens:u32", "num_heads:u32", "num_kv_heads:u32", "head_dim:u32",
                               "capacity:u32"),
    "bias.wgsl": _layout("bias.wgsl", "n:u32", "tokens:u32"),
    "rmsnorm.wgsl": _layout("rmsnorm.wgsl", "n:u32", "eps:f32"),
    "attention.wgsl": _layout("attention.wgsl", "num_heads:u32", "num_kv_heads:u32", "head_dim:u32",
                              "capacity:u32", "scale:f32"),
    "attention_split.wgsl": _layout("attention_split.wgsl", "num_heads:u32", "num_kv_heads:u32", "head_dim:u32",
                                    "capacity:u32", "splits:u32", "scale:f32"),
    "attention_combine.wgsl": _layout("attention_combine.wgsl", "num_heads:u32", "head_dim:u32", "capacity:u32",
                                      "splits:u32", "split_positions:u32"),
    "swiglu.wgsl": _layout("swiglu.wgsl", "n:u32"),
    "argmax.wgsl": _layout("argmax.wgsl", "n:u32"),
}


def params(shader: str, **values: float) -> bytes:
    return PARAMS[shader].pack(**values)


# --- dispatch grids (the shaders' default override values; pass the overrides you compiled with) ----------------

def matvec_grid(rows: int, ty: int = 4, r: int = 2) -> tuple[int, int, int]:
    return grid_1d(math.ceil(rows / (ty * r)))


def matmul_grid(rows: int, tokens: int, wx: int = 16, wy: int = 16) -> tuple[int, int, int]:
    return (math.ceil(rows / (4 * wx)), math.ceil(tokens / (2 * wy)), 1)


def embed_grid(cols: int, tokens: int, qbits: int, wg: int = 64) -> tuple[int, int, int]:
    words = cols * qbits // 32
    return (math.ceil(words / wg), tokens, 1)


def rmsnorm_grid(tokens: int) -> tuple[int, int, int]:
    return (tokens, 1, 1)


def rope_grid(tokens: int, num_heads: int, head_dim: int, wg: int = 64) -> tuple[int, int, int]:
    return grid_1d(math.ceil(tokens * num_heads * head_dim // 2 / wg))


def attention_grid(num_heads: int, tokens: int) -> tuple[int, int, int]:
    return (num_heads, tokens, 1)


def attention_splits(capacity: int, split: int = 32) -> int:
    """Splits per head of attention_split.wgsl (its grid height, and the S of its part buffer)."""
    return math.ceil(capacity / split)


def attention_split_grid(num_heads: int, capacity: int, split: int = 32) -> tuple[int, int, int]:
    return (num_heads, attention_splits(capacity, split), 1)


def attention_combine_grid(num_heads: int) -> tuple[int, int, int]:
    return (num_heads, 1, 1)


def elementwise_grid(n: int, wg: int = 256) -> tuple[int, int, int]:
    return grid_1d(math.ceil(n / wg))


def argmax_grid() -> tuple[int, int, int]:
    """argmax.wgsl main and main_pairs."""
    return (1, 1, 1)


def argmax_blocks(n: int, wg: int = 256, items: int = 8) -> int:
    """Blocks of argmax.wgsl main_blocks (its grid width, and the block states main_pairs merges)."""
    return math.ceil(n / (wg * items))
