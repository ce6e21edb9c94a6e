"""bias.wgsl: a bias vector added to every token's row in place (qwen2's q/k/v biases in prefill), against numpy;
with the engine's tuning (webgpu_shaders/kernels.json)."""

from __future__ import annotations

import numpy as np
import pytest

from .gpu import Gpu
from .kernels import elementwise_grid, params, tuning

SHADER = "bias.wgsl"
ENGINE = tuning(SHADER)  # {WG} as the engine compiles it


@pytest.mark.parametrize("tokens,n", [(1, 64), (7, 96), (300, 260)])
def test_bias(gpu: Gpu, rng: np.random.Generator, tokens: int, n: int) -> None:
    b = rng.standard_normal(n).astype(np.float32)
    y0 = rng.standard_normal((tokens, n)).astype(np.float32)
    y = gpu.storage(y0)
    p = gpu.uniform(params(SHADER, n=n, tokens=tokens))
    gpu.run(gpu.pipeline(SHADER, "main", ENGINE), [gpu.storage(b), y, p], elementwise_grid(tokens * n, ENGINE["WG"]))
    np.testing.assert_array_equal(gpu.read(y).reshape(tokens, n), y0 + b)  # one f32 rounding, as numpy's
