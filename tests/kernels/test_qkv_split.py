"""qkv_split.wgsl: a prefill pass's stacked q/k/v rows split into q, k, v with their biases (one f32 addition, as
bias.wgsl's), against numpy; with the engine's tuning (webgpu_shaders/kernels.json)."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import elementwise_grid, params, tuning

SHADER = "qkv_split.wgsl"
ENGINE = tuning(SHADER)  # {WG} as the engine compiles it


@pytest.mark.parametrize("tokens,heads,kv_heads,d,zero_bias", [(1, 9, 3, 64, True), (37, 12, 2, 128, False),
                                                                 (300, 4, 4, 8, False)])
def test_qkv_split(gpu: Gpu, rng: np.random.Generator, tokens: int, heads: int, kv_heads: int, d: int,
                   zero_bias: bool) -> None:
    qw, kvw = heads * d, kv_heads * d
    width = qw + 2 * kvw
    qkv = rng.standard_normal((tokens, width)).astype(np.float32)
    bias = np.zeros(width, np.float32) if zero_bias else rng.standard_normal(width).astype(np.float32)
    q, k, v = gpu.zeros(4 * tokens * qw), gpu.zeros(4 * tokens * kvw), gpu.zeros(4 * tokens * kvw)
    p = gpu.uniform(params(SHADER, q_width=qw, kv_width=kvw, tokens=tokens))
    gpu.run(gpu.pipeline(SHADER, "main", ENGINE), [gpu.storage(qkv), gpu.storage(bias), q, k, v, p],
            elementwise_grid(tokens * width, ENGINE["WG"]))
    want = qkv + bias  # one f32 rounding, as numpy's
    np.testing.assert_array_equal(gpu.read(q).reshape(tokens, qw), want[:, :qw])
    np.testing.assert_array_equal(gpu.read(k).reshape(tokens, kvw), want[:, qw:qw + kvw])
    np.testing.assert_array_equal(gpu.read(v).reshape(tokens, kvw), want[:, qw + kvw:])
