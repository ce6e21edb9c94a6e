"""The browser engine (app/engine on WebGPU, here SwiftShader in Chromium) on a package carrying llama.cpp K-quants
exactly (format version 5: q4k, q5k, q6k, and Q5_0 as q8), against the numpy reference engine: logits within 1e-3
for a prefill, a decode step and a prompt longer than one prefill pass, and greedy ids equal over a few tokens.

The tiny llama GGUF (tests/tiny_models.py write_kquant_gguf) mixes storages within each layer as a Q4_K_M file does:
q/k/v in three storages (no stacked matvec) and q4k gate + up (the fused SwiGLU matvec) in one layer, q4k q/k/v
(stacked) and q5k gate with a q6k up (unfused) in the other, a q4k embedding table and a q6k output head.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from browser_harness import Harness, Site, assert_logits_match_reference, reference_engine
from kernels.kernels import tuning

# shard bytes: the default (each tensor one chunk), and 64 KiB, which splits the q6k head, the q4k embedding and the
# MLP weights into row chunks (each a dispatch at its row offset; the fused gate + up per chunk pair)
SHARDS = {"whole": None, "chunked": 64 << 10}


@pytest.fixture(scope="module", params=sorted(SHARDS))
def kquant_model(request: pytest.FixtureRequest, site: Site, tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny_models import write_kquant_gguf

    from model_prep.plan import Options
    from model_prep.prepare import prepare

    base = tmp_path_factory.mktemp(f"tiny_kquant_{request.param}")
    shard = SHARDS[request.param]
    opts = Options() if shard is None else Options(shard_bytes=shard)
    package = prepare(write_kquant_gguf(base / "tiny-kquant.gguf", seed=5), base / "pkg", opts)
    if shard is not None:
        import json

        tensors = json.loads((Path(package) / "manifest.json").read_text())["tensors"]
        assert len(tensors["output.weight"]["chunks"]) > 1 and len(tensors["blk.0.ffn_gate.weight"]["chunks"]) > 1
    return site.add_model(f"tiny-kquant-{request.param}", Path(package))


@pytest.mark.slow
def test_kquant_logits_match_reference(harness: Harness, kquant_model: str) -> None:
    assert_logits_match_reference(harness, kquant_model, {"passTokens": 128})


@pytest.mark.slow
def test_kquant_gpu_tunings_under_chromiums_compiler(harness: Harness, kquant_model: str) -> None:
    """The GPUs' K-quant tunings (matvec_kq "gpu", "gpu_long"; matmul_kq "gpu_wide", laid over every matmul here: the
    tiny weights are far below its 4,096 rows), built by Chromium's WGSL compiler: SwiftShader otherwise gets the CPU
    adapters' tunings (test_browser_engine.py checks the other kernels the same way)."""
    over = {"matmulKqWide": {"minRows": 1, **tuning("matmul_kq.wgsl", "gpu_wide")}}
    info = assert_logits_match_reference(harness, kquant_model, {"passTokens": 128, "gpuTuning": over})
    assert info["tuning"]["kind"] == "gpu", info["tuning"]


@pytest.mark.slow
def test_kquant_greedy_ids_match_reference(harness: Harness, kquant_model: str) -> None:
    """Four greedy steps (prefill, then decode on the tokens the GPU chose) give the reference's ids."""
    ref = reference_engine(harness.site.models[kquant_model])
    harness.call("loadEngine", kquant_model, {"passTokens": 128})
    ids = ref.prompt_ids([{"role": "user", "content": "Generator 2 tripped on overcurrent."}])
    want: list[int] = []
    for _ in range(4):
        want.append(int(np.argmax(ref.logits(ids + want, 0))))
    got: list[int] = []
    pos, feed = 0, list(ids)
    for _ in range(4):
        logits = np.asarray(harness.call("logits", feed, pos), np.float32)
        got.append(int(np.argmax(logits)))
        pos += len(feed)
        feed = [got[-1]]
    assert got == want
