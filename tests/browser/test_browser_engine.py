"""The browser engine (app/engine on WebGPU, here SwiftShader in Chromium) against the numpy reference engine.

Greedy token ids of the default model for three chats, and logits of tiny random models (f32, q4, and q4 with q8 v
weights; llama and qwen2; qwen3 at q4, with its per-head q/k norm) within 1e-3, for a prefill, a decode step, and a
prompt longer than one prefill pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from browser_harness import Harness, Site, reference_engine
from chats import CHATS, STEPS


@pytest.mark.slow
def test_smollm2_greedy_ids_match_reference(harness: Harness, smollm2: str, site: Site) -> None:
    ref = reference_engine(site.models[smollm2])
    info = harness.call("loadEngine", smollm2, {"context": 512})
    assert info["model"] == ref.name
    lengths = []
    for messages in CHATS:
        prompt = ref.prompt_ids(messages)
        assert harness.call("promptIds", messages) == prompt, "template + tokenizer differ from Python's"
        expected = list(ref.generate_ids(prompt, STEPS, _greedy()))
        got = harness.call("generateIds", prompt, STEPS)
        assert got == expected, f"{messages[-1]['content'][:40]!r}: {ref.decode(got)!r} vs {ref.decode(expected)!r}"
        lengths.append(len(expected))
    # the pump and triage answers are long; "Paris." ends at EOS early, and must end there on both sides alike
    assert lengths[:2] == [STEPS, STEPS], lengths


def _greedy() -> Any:
    from model_prep.reference.sampling import Sampler

    return Sampler()


@pytest.mark.slow
# q4+v8: a layer's q/k/v in two storages, so decode cannot stack them into one matvec and runs three
@pytest.mark.parametrize(("arch", "weights"), [("llama", "f32"), ("qwen2", "f32"), ("llama", "q4"), ("qwen2", "q4+v8"),
                                               ("qwen3", "q4")])
def test_tiny_logits_match_reference(harness: Harness, tiny: Any, site: Site, arch: str, weights: str) -> None:
    name = tiny(arch, weights)
    ref = reference_engine(site.models[name])
    harness.call("loadEngine", name, {"passTokens": 128})
    prompt = ref.prompt_ids([{"role": "user", "content": "The pump bearing runs hot at 78 degrees; what now?"}])
    long = ref.prompt_ids([{"role": "user", "content": "Generator 2 tripped on overcurrent. " * 12}])
    assert len(long) > 128, "the long prompt must take more than one prefill pass (128 tokens)"

    def compare(ids: list[int], pos: int, what: str) -> None:
        expected = ref.logits(ids, pos)
        got = np.asarray(harness.call("logits", ids, pos), np.float32)
        assert got.shape == expected.shape
        err = float(np.abs(got - expected).max())
        assert err <= 1e-3, f"{what}: max abs error {err:.2e} (logits scale {float(np.abs(expected).max()):.2f})"

    compare(prompt, 0, "prefill")
    compare([int(np.argmax(ref.logits(prompt, 0)))], len(prompt), "decode step")
    compare(long, 0, "long prefill")
