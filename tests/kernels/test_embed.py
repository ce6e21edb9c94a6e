"""embed.wgsl: embedding rows from q4 and q8 tables split into row chunks; ids from a storage buffer."""

from __future__ import annotations

import numpy as np
import pytest

from model_prep import quant

from .gpu import Gpu
from .kernels import embed_grid, params, tuning
from .reference import random_qtensor

SHADER = "embed.wgsl"
ENGINE = tuning(SHADER)  # {WG} as the engine compiles it (webgpu_shaders/kernels.json)
SENTINEL = -7.25


@pytest.mark.parametrize("storage,cols", [("q4", 96), ("q8", 576), ("q4", 32), ("q8", 160)])
def test_embed_chunked(gpu: Gpu, rng: np.random.Generator, storage: str, cols: int) -> None:
    vocab, split = 101, 60  # two chunks: rows [0, 60) and [60, 101)
    table = random_qtensor(rng, storage, vocab, cols)
    ids = np.array([0, 59, 60, 100, 7, 60, 99], np.uint32)  # 7 tokens: both chunk edges, a repeat
    out = gpu.storage(np.full(len(ids) * cols, SENTINEL, np.float32))
    pipe = gpu.pipeline(SHADER, "main", {"QBITS": table.qbits, **ENGINE})
    id_buf = gpu.storage(ids)
    for start, stop in ((0, split), (split, vocab)):
        chunk = quant.slice_rows(storage, table.planes, cols, start, stop)
        p = gpu.uniform(params(SHADER, row_start=start, rows=stop - start, cols=cols, tokens=len(ids)))
        gpu.run(pipe, [id_buf, gpu.storage(chunk["qweight"]), gpu.storage(chunk["scales"]), out, p],
                embed_grid(cols, len(ids), table.qbits, ENGINE["WG"]))
        got = gpu.read(out).reshape(len(ids), cols)
        done = ids < stop
        # scale * q (+ min) has one rounding in f32 either way (the product is exact), so rows match bit for bit
        np.testing.assert_array_equal(got[done], table.w[ids[done]].astype(np.float32))
        assert np.all(got[~done] == SENTINEL), "a chunk wrote a token that is not in it"
