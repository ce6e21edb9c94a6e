"""The browser engine's grammar path (Model.forward with a token bitmask, argmax.wgsl on SwiftShader) against numpy
over the reference engine's logits: the masked argmax, its masked-softmax log-probability, the raw logits left
unmasked, the full mask restored after a grammar's, and GrammarError when no token is allowed."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from browser_harness import Harness, Site, reference_engine


def mask_words(allowed: npt.NDArray[np.bool_]) -> list[int]:
    """Bit (i % 32) of word i // 32 set = token i allowed."""
    bits = np.zeros(-(-len(allowed) // 32) * 32, np.uint64)
    bits[: len(allowed)] = allowed
    return [int(w) for w in (bits.reshape(-1, 32) << np.arange(32, dtype=np.uint64)).sum(1)]


def masked(logits: npt.NDArray[np.float32], allowed: npt.NDArray[np.bool_]) -> tuple[set[int], float]:
    """The allowed tokens within 2e-3 of the best allowed logit (any may win on the GPU: its logits differ from the
    reference's by up to 1e-3; the first is numpy's argmax), and the best's log-probability under the softmax over
    the allowed tokens, in float64."""
    idx = np.flatnonzero(allowed)
    values = logits[idx].astype(np.float64)
    best = values.max()
    near = {int(i) for i in idx[values >= best - 2e-3]}
    return near, float(best - (best + np.log(np.exp(values - best).sum())))


@pytest.mark.slow
def test_masked_forward_matches_reference(harness: Harness, tiny: Any, site: Site) -> None:
    name = tiny("llama", "q4")
    ref = reference_engine(site.models[name])
    harness.call("loadEngine", name, {})
    prompt = ref.prompt_ids([{"role": "user", "content": "The pump bearing runs hot at 78 degrees; what now?"}])
    rng = np.random.default_rng(9)

    def forward(ids: list[int], pos: int, allowed: npt.NDArray[np.bool_] | None, logits: bool) -> dict[str, Any]:
        got = harness.call("maskedForward", ids, pos, None if allowed is None else mask_words(allowed), logits)
        assert "error" not in got, got
        return got

    def check(got: dict[str, Any], expected: npt.NDArray[np.float32], allowed: npt.NDArray[np.bool_],
              what: str) -> None:
        near, logprob = masked(expected, allowed)
        assert allowed[got["token"]] and got["token"] in near, f"{what}: token {got['token']}, numpy {min(near)}"
        assert abs(got["logprob"] - logprob) <= 1e-3, f"{what}: logprob {got['logprob']}, numpy {logprob}"

    # prefill under a random mask that leaves out the unmasked argmax; the logits come back raw
    expected = ref.logits(prompt, 0)
    vocab = len(expected)
    allowed = rng.random(vocab) < 0.5
    allowed[int(np.argmax(expected))] = False
    got = forward(prompt, 0, allowed, True)
    logits = np.asarray(got["logits"], np.float32)
    assert float(np.abs(logits - expected).max()) <= 1e-3, "the logits read back must be the model's, unmasked"
    check(got, expected, allowed, "prefill, dense mask")
    # the GPU's logprob from its own logits: the kernel's accuracy, apart from the engines' difference
    own = masked(logits, allowed)[1]
    assert abs(got["logprob"] - own) <= 1e-5 * abs(own) + 1e-7, (got["logprob"], own)

    # decode steps (no logits: the commands encoded ahead): 2 tokens of the last mask word allowed, then no mask
    # (the full mask written back), then an empty mask (GrammarError), then the same step again without a mask
    pos = len(prompt)
    token = got["token"]
    expected = ref.logits([token], pos)
    last = np.zeros(vocab, bool)
    last[rng.choice(np.arange((vocab - 1) // 32 * 32, vocab), size=2, replace=False)] = True
    got = forward([token], pos, last, False)
    check(got, expected, last, "decode, last word")
    assert got.get("logits") is None

    pos, token = pos + 1, got["token"]
    expected = ref.logits([token], pos)
    got = forward([token], pos, None, False)
    check(got, expected, np.ones(vocab, bool), "decode, mask cleared")

    pos, token = pos + 1, got["token"]
    empty = harness.call("maskedForward", [token], pos, [0] * len(mask_words(last)), False)
    assert empty.get("error", {}).get("name") == "GrammarError", empty
    assert "no token is allowed by the grammar" in empty["error"]["message"]
    short = harness.call("maskedForward", [token], pos, [0xFFFFFFFF] * (len(mask_words(last)) + 1), False)
    assert short.get("error", {}).get("name") == "GrammarError", short
    expected = ref.logits([token], pos)
    check(forward([token], pos, None, False), expected, np.ones(vocab, bool), "decode after GrammarError")
