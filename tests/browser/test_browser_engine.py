"""The browser engine (app/engine on WebGPU, here SwiftShader in Chromium) against the numpy reference engine.

Greedy token ids of the default model for three chats, and logits of tiny random models (f32, q4, and q4 with q8 v
weights; llama and qwen2; qwen3 at q4, with its per-head q/k norm; phi3 at q4, with longrope's short factors and
attention factor) within 1e-3, for a prefill, a decode step, and a prompt longer than one prefill pass.
"""

from __future__ import annotations

from typing import Any

import pytest
from browser_harness import Harness, assert_greedy_matches_reference, assert_logits_match_reference


@pytest.mark.slow
def test_smollm2_greedy_ids_match_reference(harness: Harness, smollm2: str) -> None:
    assert_greedy_matches_reference(harness, smollm2, {"context": 512})


@pytest.mark.slow
# q4+v8: a layer's q/k/v in two storages, so decode cannot stack them into one matvec and runs three
@pytest.mark.parametrize(("arch", "weights"), [("llama", "f32"), ("qwen2", "f32"), ("llama", "q4"), ("qwen2", "q4+v8"),
                                               ("qwen3", "q4"), ("phi3", "q4")])
def test_tiny_logits_match_reference(harness: Harness, tiny: Any, arch: str, weights: str) -> None:
    assert_logits_match_reference(harness, tiny(arch, weights), {"passTokens": 128})
