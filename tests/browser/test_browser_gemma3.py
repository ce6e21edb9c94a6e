"""The browser engine (app/engine on WebGPU, here SwiftShader in Chromium) on tiny Gemma 3 packages against the numpy
reference engine: logits within 1e-3 for a prefill, a decode step and a prompt longer than one prefill pass, so at
positions well past the sliding window (8) of its sliding layers.

The checkpoint (tests/tiny_models.py write_tiny_gemma3): transformers' Gemma3ForCausalLM with sliding and full layers
(each kind its own RoPE base), query_pre_attn_scalar not head_dim (attention_scale), post-norms, GeGLU, the scaled
embedding and a tied head; here with head_dim 256 (gemma3's), so prefill attention runs attention.wgsl and decode
attention_split.wgsl at 256. f32 and q4 packages: the MLP's fused gate + up matvec with gelu_tanh in both storages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser_harness import Harness, Site, assert_logits_match_reference


@pytest.fixture(scope="module")
def gemma3(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """gemma3(weights) -> the served name of a tiny Gemma 3 package (cached)."""
    from tiny_models import write_tiny_gemma3

    from model_prep.plan import Options
    from model_prep.prepare import prepare

    made: dict[str, str] = {}

    def get(weights: str) -> str:
        if weights not in made:
            base = tmp_path_factory.mktemp(f"tiny_gemma3_{weights}")
            hf = write_tiny_gemma3(base / "hf", seed=2, heads=2, kv_heads=1, head_dim=256)
            package = prepare(hf, base / "pkg", Options(weights=weights))
            made[weights] = site.add_model(f"tiny-gemma3-{weights}", package)
        return made[weights]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["f32", "q4"])
def test_gemma3_logits_match_reference(harness: Harness, gemma3: Any, weights: str) -> None:
    assert_logits_match_reference(harness, gemma3(weights), {"passTokens": 128})


@pytest.mark.slow
def test_real_gemma3_270m_greedy_ids_match_reference(harness: Harness, site: Site, gemma3_270m_gguf: Path,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real gemma-3-270m (Q4_K_M: q4k / q6k / Q5_0 as q8 / Q8_0 embedding and tied head, 18 layers of which
    every 6th full, head_dim 256, vocabulary 262144): four greedy ids after "The capital of France is" (BOS first),
    the prefill and three decode steps, equal the reference engine's."""
    import numpy as np
    from browser_harness import reference_engine

    from model_prep.plan import Options
    from model_prep.prepare import prepare

    package = prepare(gemma3_270m_gguf, tmp_path_factory.mktemp("gemma3_270m") / "pkg", Options())
    name = site.add_model("gemma-3-270m", package)
    ref = reference_engine(site.models[name])
    ids = ref.tokenizer.encode("The capital of France is").ids
    harness.call("loadEngine", name, {"context": 64, "passTokens": 32})
    want: list[int] = []
    got: list[int] = []
    worst = 0.0
    feed, pos = list(ids), 0
    for _ in range(4):
        expected = ref.logits(feed, pos)
        logits = np.asarray(harness.call("logits", feed, pos), np.float32)
        worst = max(worst, float(np.abs(logits - expected).max()))
        want.append(int(np.argmax(expected)))
        got.append(int(np.argmax(logits)))
        pos += len(feed)
        feed = [want[-1]]  # both sides go on with the reference's token
    assert got == want, f"{ref.tokenizer.decode(got)!r} vs {ref.tokenizer.decode(want)!r} (max logit error {worst:.2e})"
    print(f"gemma-3-270m: {ref.tokenizer.decode(want)!r}, max logit error {worst:.2e}")
