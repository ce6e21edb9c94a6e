"""attention_decode.wgsl: decode attention in one dispatch (one workgroup per query head over every cached position,
online softmax over blocks), with the new token's bias, RoPE and KV-cache write folded in as in attention_split.wgsl;
against numpy through test_attention_split.py's checks, at the engine's shapes (grids.js attentionDecodeShape) and at
block counts, thread splits and windows around them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import attention_decode_shape, params, tunings
from .reference import EPS32
from .test_attention_split import check_decode_attention

DECODE = "attention_decode.wgsl"


@pytest.mark.parametrize("heads,kv_heads,d,pos,capacity,half,window", [
    (9, 3, 64, 0, 160, False, 0),        # first token: one key, the new one
    (9, 3, 64, 150, 160, False, 0),      # SmolLM2's heads: 151 keys, one block or several by WG
    (16, 2, 128, 383, 392, True, 0),     # Qwen2.5-3B's heads at KV 384: the new key the last of its block
    (12, 2, 128, 255, 392, True, 0),     # Qwen2.5-1.5B's heads: 256 keys
    (12, 2, 128, 256, 392, True, 0),     # ... 257: the new key alone in a new block
    (4, 1, 256, 40, 64, True, 0),        # gemma3's head size: TP raised to 2 (64 columns / 32 words a thread)
    (4, 1, 256, 100, 128, True, 8),      # gemma3's sliding window: 8 keys of 101
    (4, 1, 64, 100, 128, False, 70),     # a window over blocks, the first partly seen
    (3, 1, 12, 70, 80, False, 0),        # odd sizes: d/4 = 3 columns (threads past NSL * 3 idle)
])
@pytest.mark.parametrize("tuning", ["gpu", "cpu", "tp2", "wg32"])
def test_attention_decode(gpu: Gpu, rng: np.random.Generator, heads: int, kv_heads: int, d: int, pos: int,
                          capacity: int, half: bool, window: int, tuning: str) -> None:
    t = {**tunings(DECODE), "tp2": {"WG": 128, "TP": 2}, "wg32": {"WG": 32, "TP": 1}}[tuning]
    shape = attention_decode_shape(d, t)
    blocks = -(-(min(pos + 1, window or pos + 1)) // (shape["WG"] // shape["TP"]))

    def run(b: dict[str, Any]) -> None:
        p = gpu.uniform(params(DECODE, num_heads=heads, num_kv_heads=kv_heads, head_dim=d, capacity=capacity,
                               scale=b["scale"]))
        gpu.run(gpu.pipeline(DECODE, "main", {**shape, "HALF": half, "WINDOW": window}),
                [b["positions"], b["cs"], b["qkv"], b["bias"], b["k"], b["v"], b["out"], p], (heads, 1, 1))

    # the blocks' merge: a rescaling per block per value
    check_decode_attention(gpu, rng, heads, kv_heads, d, pos, capacity, half, window, run, 8.0 * EPS32 * blocks,
                           f"attention decode {heads}/{kv_heads}x{d} at {pos} ({shape}, window {window})")


@pytest.mark.parametrize("d,tuning,want", [
    (64, {"WG": 256, "TP": 1}, {"WG": 256, "TP": 1, "D4": 16}),
    (128, {"WG": 256, "TP": 1}, {"WG": 256, "TP": 1, "D4": 32}),
    (256, {"WG": 256, "TP": 1}, {"WG": 256, "TP": 2, "D4": 64}),   # 64 key words a thread: too many registers
    (256, {"WG": 32, "TP": 1}, {"WG": 64, "TP": 2, "D4": 64}),     # a workgroup of at least d/4 threads
])
def test_attention_decode_shape(d: int, tuning: dict[str, int], want: dict[str, int]) -> None:
    assert attention_decode_shape(d, tuning) == want
