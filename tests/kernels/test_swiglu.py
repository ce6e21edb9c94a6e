"""swiglu.wgsl: y = silu(gate) * up elementwise (prefill), against numpy; with the engine's tuning
(webgpu_shaders/kernels.json)."""

from __future__ import annotations

import numpy as np

from .gpu import Gpu
from .kernels import elementwise_grid, params, tuning
from .reference import EPS32, assert_close, silu

SHADER = "swiglu.wgsl"
ENGINE = tuning(SHADER)  # {WG} as the engine compiles it


def test_swiglu(gpu: Gpu, rng: np.random.Generator) -> None:
    n = 1537
    g = (rng.standard_normal(n) * 4.0).astype(np.float32)
    g[:3] = [-100.0, 100.0, 0.0]  # exp overflow to inf must still give silu(-100) = -0
    u = rng.standard_normal(n).astype(np.float32)
    y = gpu.zeros(4 * n)
    p = gpu.uniform(params(SHADER, n=n))
    gpu.run(gpu.pipeline(SHADER, "main", ENGINE), [gpu.storage(g), gpu.storage(u), y, p],
            elementwise_grid(n, ENGINE["WG"]))
    want = silu(g.astype(np.float64)) * u
    # exp is accurate to about (1 + |g|) ulps relative; a division and a product add a few more
    tol = (8.0 + 2.0 * np.abs(g)) * EPS32 * np.abs(want) + 1e-37
    assert_close(gpu.read(y), want, tol, "swiglu")
