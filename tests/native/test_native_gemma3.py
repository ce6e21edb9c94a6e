"""Gemma 3 on the native CPU engine (app/native over cpu_engine.c) against the numpy reference engine: a tiny random
Gemma3ForCausalLM (tests/tiny_models.py write_tiny_gemma3: embedding scaled by sqrt(hidden), pre- and post-norms,
q/k norms, GeGLU, attention_scale != 1/sqrt(head_dim), sliding layers of window 8 beside full ones, a RoPE base per
layer type) prepared at f32 and q4, logits within 1e-3 for a 20-token prompt (past the window), decode steps after it
and a prompt run in passes of 8 tokens, on 1 and 3 threads; and the real gemma-3-270m Q4_K_M (K-quants carried):
8 greedy ids equal to the reference's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_models import write_tiny_gemma3

from app.native.model import NativeModel
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load

TOLERANCE = 1e-3
TEXT = "The pump bearing runs hot at 78 degrees; check the lube oil and the strainer now."


@pytest.fixture(scope="module")
def gemma3_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("native-gemma3")
    hf = write_tiny_gemma3(out / "hf")
    return {w: prepare(hf, out / w, Options(weights=w)) for w in ("f32", "q4")}


@pytest.mark.parametrize("weights", ["f32", "q4"])
@pytest.mark.parametrize("threads", [1, 3])
def test_tiny_gemma3_logits_within_1e_3(gemma3_packages: dict[str, Path], weights: str, threads: int) -> None:
    pkg = gemma3_packages[weights]
    ref = load(pkg, context=64)
    assert ref.config.sliding_window == 8 and "sliding" in (ref.config.layer_types or ())
    ids = ref.tokenizer.encode(TEXT, add_special_tokens=False).ids[:20]
    assert len(ids) == 20
    for pass_tokens in (64, 8):  # whole, and in passes of 8 (each pass's queries see keys of earlier passes)
        native = NativeModel(open_package(pkg), context=64, pass_tokens=pass_tokens, threads=threads)
        ref.reset_cache()
        steps = [(ids, 0)]
        expected = [ref.logits(ids, 0)]
        for k in range(4):  # decode steps at positions 20..23
            token = int(expected[-1].argmax())
            steps.append(([token], 20 + k))
            expected.append(ref.logits([token], 20 + k))
        for k, ((step_ids, pos), want) in enumerate(zip(steps, expected, strict=True)):
            got = native.forward(step_ids, pos)
            err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
            assert err <= TOLERANCE, f"{weights}, {threads} threads, passes of {pass_tokens}, step {k}: {err:.2e}"
            assert int(got.argmax()) == int(want.argmax())
            assert np.abs(want).max() > 10 * TOLERANCE
        native.close()


def test_real_gemma3_270m_greedy_ids_equal_the_reference(gemma3_270m_gguf: Path, tmp_path: Path) -> None:
    """The real gemma-3-270m (Q4_K_M GGUF: q4k, q6k, Q5_0 and Q8_0 as q8; head_dim 256, window 512, 18 layers):
    8 greedy tokens after "The capital of France is" equal to the reference engine's, the logits within 1e-3."""
    pkg = prepare(gemma3_270m_gguf, tmp_path / "pkg", Options())
    ref = load(pkg, context=64)
    native = NativeModel(open_package(pkg), context=64, threads=2)
    ids = ref.tokenizer.encode("The capital of France is").ids
    want, got = ref.logits(ids, 0), native.forward(ids, 0)
    ref_ids: list[int] = []
    for k in range(8):
        err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
        assert err <= TOLERANCE, f"step {k}: max abs error {err:.2e}"
        assert int(got.argmax()) == int(want.argmax()), f"step {k}"
        ref_ids.append(int(want.argmax()))
        pos = len(ids) + k
        want, got = ref.logits([ref_ids[-1]], pos), native.forward([ref_ids[-1]], pos)
    native.close()
