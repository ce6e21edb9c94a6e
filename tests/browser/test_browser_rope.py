"""Llama 3.x "llama3" RoPE scaling in the browser engine (WebGPU on SwiftShader) against the numpy reference: a tiny
random transformers checkpoint whose original context is 64 positions, logits within 1e-3 for a prefill of 100
tokens and a decode step at position 100 (where the scaled low frequencies differ from plain RoPE's), f32 and q4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_harness import Harness, Site, reference_engine

LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}


@pytest.fixture(scope="module")
def llama3_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import make_hf

    return make_hf(tmp_path_factory.mktemp("llama3_hf"), "llama", seed=3, rope_parameters=LLAMA3)


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["f32", "q4"])
def test_llama3_rope_logits_match_reference(harness: Harness, site: Site, llama3_hf: Path, weights: str,
                                            tmp_path: Path) -> None:
    from model_prep.plan import Options
    from model_prep.prepare import prepare

    name = site.add_model(f"tiny-llama3-{weights}", prepare(llama3_hf, tmp_path / "pkg", Options(weights=weights)))
    ref = reference_engine(site.models[name])
    assert ref.config.rope_freq_factors is not None
    harness.call("loadEngine", name, {"context": 256})
    ids = ref.tokenizer.encode("Generator 2 tripped on overcurrent; reset after inspection. " * 12).ids[:100]
    assert len(ids) == 100

    def compare(ids: list[int], pos: int, what: str) -> Any:
        expected = ref.logits(ids, pos)
        got = np.asarray(harness.call("logits", ids, pos), np.float32)
        err = float(np.abs(got - expected).max())
        assert err <= 1e-3, f"{what}: max abs error {err:.2e} (logits scale {float(np.abs(expected).max()):.2f})"
        return expected

    last = compare(ids, 0, "prefill of 100 tokens")
    compare([int(np.argmax(last))], len(ids), "decode step at position 100")
