"""Host-side description of each WGSL kernel: its Params uniform layout, the tunings the engine compiles it with,
and its dispatch grid.

Layouts and tunings come from webgpu_shaders/kernels.json, the one declaration the JS engine reads too
(app/engine/gpu/params.js and pipelines.js), so the kernel tests run exactly the engine's tunings; test_params.py
checks every layout against the ``struct Params`` of its shader, field by field, and its byte size against the
compiled pipeline. The grid functions mirror app/engine/gpu/grids.js and take the override constants explicitly.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Literal

from .gpu import SHADER_DIR, grid_1d

DECLARATION = SHADER_DIR / "kernels.json"
KERNELS: dict[str, dict[str, Any]] = json.loads(DECLARATION.read_text())["kernels"]

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


PARAMS: dict[str, ParamsLayout] = {shader: _layout(shader, *k["params"]) for shader, k in KERNELS.items()}


def tunings(shader: str) -> dict[str, dict[str, int]]:
    """Every tuning the engine compiles ``shader`` with, by name: "gpu", and "cpu" / "gpu_long" where declared."""
    return {name: dict(t) for name, t in KERNELS[shader]["tunings"].items()}


def tuning(shader: str, name: str = "gpu") -> dict[str, int]:
    """One of the engine's tunings of ``shader`` (its override constants)."""
    return dict(KERNELS[shader]["tunings"][name])


def params(shader: str, **values: float) -> bytes:
    return PARAMS[shader].pack(**values)


# --- dispatch grids (pass the override constants the pipeline was compiled with) ----------------------------------

def matvec_grid(rows: int, ty: int, r: int) -> tuple[int, int, int]:
    return grid_1d(math.ceil(rows / (ty * r)))


def matvec_f32_grid(rows: int, r: int) -> tuple[int, int, int]:
    return grid_1d(math.ceil(rows / r))


def matmul_grid(rows: int, tokens: int, t: dict[str, int]) -> tuple[int, int, int]:
    """matmul.wgsl: tiles of 4 RV WX rows by 4 TV WY tokens (t: the pipeline's overrides)."""
    return (math.ceil(rows / (4 * t["RV"] * t["WX"])), math.ceil(tokens / (4 * t["TV"] * t["WY"])), 1)


def matmul_f32_grid(rows: int, tokens: int, tile: int) -> tuple[int, int, int]:
    return (math.ceil(rows / tile), math.ceil(tokens / tile), 1)


def embed_grid(cols: int, tokens: int, qbits: int, wg: int) -> tuple[int, int, int]:
    words = cols * qbits // 32
    return (math.ceil(words / wg), tokens, 1)


def embed_f32_grid(cols: int, tokens: int, wg: int) -> tuple[int, int, int]:
    return (math.ceil(cols / wg), tokens, 1)


def rmsnorm_grid(tokens: int) -> tuple[int, int, int]:
    return (tokens, 1, 1)


def qk_norm_grid(heads: int, tokens: int) -> tuple[int, int, int]:
    return (heads, tokens, 1)


def rope_grid(tokens: int, num_heads: int, head_dim: int, wg: int) -> tuple[int, int, int]:
    return grid_1d(math.ceil(tokens * num_heads * head_dim // 4 / wg))


def attention_grid(num_heads: int, tokens: int) -> tuple[int, int, int]:
    return (num_heads, tokens, 1)


def attention_prefill_splits(end: int, split: int, max_splits: int) -> int:
    """attention_prefill.wgsl's splits of the cache positions for a pass whose last position is end - 1
    (grids.js attentionPrefillSplits)."""
    return min(max_splits, math.ceil(end / split))


def attention_prefill_grid(num_heads: int, tokens: int, bq: int, splits: int = 1) -> tuple[int, int, int]:
    return (num_heads, math.ceil(tokens / bq), splits)


def attention_prefill_combine_grid(tokens: int, num_heads: int, head_dim: int, wg: int) -> tuple[int, int, int]:
    """attention_prefill_combine.wgsl: one thread per output vec4 (dispatched only for passes of several splits)."""
    return grid_1d(math.ceil(tokens * num_heads * head_dim / 4 / wg))


def attention_split_shape(head_dim: int, heads: int, kv_heads: int, cap: dict[str, int]) -> dict[str, int]:
    """attention_split.wgsl's overrides as the engine picks them (grids.js attentionSplitShape): GROUP query heads of
    one kv head per workgroup (the largest divisor of heads / kv_heads with GROUP * head_dim / 4 <= 256), SPLIT
    positions (a power of two within the caps), TP threads per (head, position) pair (a power of two up to 8)."""
    d4 = head_dim // 4
    per_kv = heads // kv_heads
    max_group = min(cap["WG"], cap.get("GROUP", per_kv))
    group = max(g for g in range(1, per_kv + 1) if per_kv % g == 0 and g * d4 <= 256 and g <= max_group)
    split = 1
    while split * 2 <= cap["SPLIT"] and group * split * 2 <= cap["WG"]:
        split *= 2
    tp = 1
    while tp < 8 and tp * 2 <= d4 and group * split * tp * 2 <= cap["WG"]:
        tp *= 2
    return {"GROUP": group, "SPLIT": split, "TP": tp, "D4": d4}


def attention_splits(capacity: int, split: int) -> int:
    """Splits per head of attention_split.wgsl (its grid height, and the S of its part buffer)."""
    return math.ceil(capacity / split)


def attention_split_grid(num_heads: int, capacity: int, shape: dict[str, int]) -> tuple[int, int, int]:
    """attention_split.wgsl: one workgroup per (GROUP query heads, split of SPLIT positions)."""
    return (num_heads // shape["GROUP"], attention_splits(capacity, shape["SPLIT"]), 1)


def attention_combine_grid(num_heads: int, column_groups: int) -> tuple[int, int, int]:
    """attention_combine.wgsl: CG workgroups (column groups) per query head."""
    return (num_heads, column_groups, 1)


def elementwise_grid(n: int, wg: int) -> tuple[int, int, int]:
    """swiglu.wgsl, bias.wgsl: one thread per element."""
    return grid_1d(math.ceil(n / wg))


def argmax_grid() -> tuple[int, int, int]:
    """argmax.wgsl main and main_pairs."""
    return (1, 1, 1)


def argmax_blocks(n: int, wg: int, items: int) -> int:
    """Blocks of argmax.wgsl main_blocks (its grid width, and the block states main_pairs merges)."""
    return math.ceil(n / (wg * items))
