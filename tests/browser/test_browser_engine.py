"""The browser engine (app/engine on WebGPU, here SwiftShader in Chromium) against the numpy reference engine.

Greedy token ids of the default model for three chats, and logits of tiny random models (f32, q4, and q4 with q8 v
weights; llama and qwen2; qwen3 at q4, with its per-head q/k norm; phi3 at q4, with longrope's short factors and
attention factor) within 1e-3, for a prefill, a decode step, and a prompt longer than one prefill pass; and the
same for the GPUs' kernel tunings, compiled by Chromium's WGSL compiler.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from browser_harness import Harness, assert_greedy_matches_reference, assert_logits_match_reference, reference_engine
from kernels.kernels import KERNELS, tuning


@pytest.mark.slow
def test_smollm2_greedy_ids_match_reference(harness: Harness, smollm2: str) -> None:
    assert_greedy_matches_reference(harness, smollm2, {"context": 512})


@pytest.mark.slow
# q4+v8: a layer's q/k/v in two storages, so decode cannot stack them into one matvec and runs three
@pytest.mark.parametrize(("arch", "weights"), [("llama", "f32"), ("qwen2", "f32"), ("llama", "q4"), ("qwen2", "q4+v8"),
                                               ("qwen3", "q4"), ("phi3", "q4")])
def test_tiny_logits_match_reference(harness: Harness, tiny: Any, arch: str, weights: str) -> None:
    assert_logits_match_reference(harness, tiny(arch, weights), {"passTokens": 128})


# The GPUs' kernel tunings (webgpu_shaders/kernels.json "gpu", "gpu_wide") built by Chromium's own WGSL compiler and
# run here: SwiftShader gets the CPU adapters' tunings, so otherwise only wgpu-native's compiler (tests/kernels) would
# see them before a user's GPU does. The wide matmul tiles are laid over every matmul (minRows 1: the tiny models'
# weights are far below 4,096 rows), and tiles of 128 x 128 (32 KiB of workgroup memory, which probe() asks for) too.
GPU_TUNINGS: dict[str, dict[str, Any]] = {
    "gpu": {},
    "gpu, wide matmul tiles everywhere": {"matmulWide": {"minRows": 1, **tuning("matmul.wgsl", "gpu_wide")}},
    "gpu, 128 x 128 matmul tiles": {"matmulWide": {"minRows": 1, "WX": 16, "WY": 16, "RV": 2, "TV": 2}},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GPU_TUNINGS))
def test_gpu_tunings_under_chromiums_compiler(harness: Harness, tiny: Any, name: str) -> None:
    over = GPU_TUNINGS[name]
    info = assert_logits_match_reference(harness, tiny("qwen2", "q4+v8"), {"passTokens": 128, "gpuTuning": over})
    assert info["tuning"]["kind"] == "gpu", info["tuning"]
    engine_wide = {"minRows": KERNELS["matmul.wgsl"]["wide_min_rows"], **tuning("matmul.wgsl", "gpu_wide")}
    assert info["tuning"]["matmulWide"] == over.get("matmulWide", engine_wide)


@pytest.mark.slow
def test_a_conversation_comes_back_from_a_kv_slot(harness: Harness, tiny: Any) -> None:
    """Two conversations in turns on the WebGPU engine: the one left is kept in a KV slot (buffer copies) and comes
    back for its next request, which then runs only its last token; its logits equal the reference's for the whole
    prompt (wrong or missing positions would not)."""
    name = tiny("llama", "q4")
    ref = reference_engine(harness.site.models[name])
    harness.call("loadEngine", name, {"passTokens": 128})
    first = ref.prompt_ids([{"role": "user", "content": "The pump bearing runs hot at 78 degrees; what now? " * 3}])
    other = ref.prompt_ids([{"role": "system", "content": "Triage."},
                            {"role": "user", "content": "Fever 39.4 C and a fast pulse in a child. " * 3}])
    assert len(first) >= 40 and len(other) >= 40
    ran = []
    for ids in (first, other, first, other):
        got = harness.call("prefill", ids)
        err = float(np.abs(np.asarray(got["logits"], np.float32) - ref.logits(ids, 0)).max())
        assert err <= 1e-3, f"max abs error {err:.2e} after {len(ran)} requests"
        ran.append(got["prefilled"])
    assert ran[0] == len(first) and ran[1] > len(other) - 8, ran  # the second shares a few tokens at most
    assert ran[2:] == [1, 1], ran  # from the slots: only the last prompt token ran
