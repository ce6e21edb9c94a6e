"""embed_f32.wgsl: the embedding lookup of a storage-f32 table (the f32 twin of embed.wgsl), against numpy; with the
engine's tuning (webgpu_shaders/kernels.json)."""

from __future__ import annotations

import numpy as np

from .gpu import Gpu
from .kernels import embed_f32_grid, params, tuning

SHADER = "embed_f32.wgsl"
ENGINE = tuning(SHADER)  # {WG} as the engine compiles it
SENTINEL = -7.25  # the output before the lookups: every element must be overwritten


def test_embed_f32(gpu: Gpu, rng: np.random.Generator) -> None:
    """Two chunks of a 50-row table looked up by two dispatches; each writes only its own tokens."""
    vocab, cols = 50, 70
    table = rng.standard_normal((vocab, cols)).astype(np.float32)
    ids = np.array([0, 49, 20, 21, 7, 20], np.uint32)
    out = gpu.storage(np.full((len(ids), cols), SENTINEL, np.float32))
    pipe = gpu.pipeline(SHADER, "main", ENGINE)
    for start, stop in [(0, 21), (21, 50)]:
        p = gpu.uniform(params(SHADER, row_start=start, rows=stop - start, cols=cols, tokens=len(ids)))
        gpu.run(pipe, [gpu.storage(ids), gpu.storage(table[start:stop]), out, p],
                embed_f32_grid(cols, len(ids), ENGINE["WG"]))
    np.testing.assert_array_equal(gpu.read(out).reshape(len(ids), cols), table[ids])
