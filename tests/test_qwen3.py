"""Qwen3 (dense) along the prepare path (issue 12): a tiny random checkpoint written by transformers (per-head q/k
RMSNorm, no biases, head_dim 64 on a hidden size of 128, tied embeddings), read as an HF folder and as a llama.cpp-style
GGUF, stored in a format-version-3 package (config.qk_norm, attn_q_norm / attn_k_norm as f32), and the reference
engine's logits against transformers' at f32, q8 and q4 (the same tolerances as the llama/qwen2/llama3 tests); what
is not implemented (MoE, sliding window, biases) is refused with a message naming it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_reference_vs_transformers import PROMPT
from tiny_models import edited_hf_copy, hf_logits, hf_to_gguf, rel_err, rewrite_gguf, transformers_logits

from model_prep import format as fmt
from model_prep.errors import PackageError, UnsupportedError
from model_prep.gguf_source import read_gguf
from model_prep.hf_source import read_hf_folder
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load


def test_config_from_hf_and_gguf(tiny_hf, tmp_path: Path) -> None:
    hf = tiny_hf("qwen3")
    cfg = read_hf_folder(hf).config
    assert (cfg.architecture, cfg.qk_norm, cfg.attention_bias, cfg.tie_word_embeddings) == ("qwen3", True, False, True)
    assert cfg.head_dim == 64 and cfg.num_heads * cfg.head_dim != cfg.hidden_size  # head_dim read, not derived
    assert cfg.rope_layout == fmt.ROPE_HALF
    g = read_gguf(hf_to_gguf(hf, tmp_path / "m.gguf")).config
    assert g.qk_norm and g.head_dim == 64 and g.rope_layout == fmt.ROPE_HALF


@pytest.mark.parametrize("weights", ["f32", "q8", "q4"])
def test_reference_logits_match_transformers(tiny_hf, tmp_path: Path, weights: str) -> None:
    hf = tiny_hf("qwen3")
    pkg_dir = prepare(hf, tmp_path / weights, Options(weights=weights))
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    assert manifest["format_version"] == fmt.FORMAT_VERSION_QK_NORM == 3 and manifest["config"]["qk_norm"] is True
    for i in range(2):
        for n in ("attn_q_norm.weight", "attn_k_norm.weight"):
            entry = manifest["tensors"][f"blk.{i}.{n}"]
            assert entry["storage"] == "f32" and entry["shape"] == [64]
    notes = json.loads((pkg_dir / "report.json").read_text())["notes"]
    assert any("format version 3" in n for n in notes), notes
    engine = load(pkg_dir)
    ids = engine.tokenizer.encode(PROMPT).ids
    ours = engine.logits(ids, 0, all_logits=True)
    want = transformers_logits(hf, pkg_dir, ids, weights)
    assert rel_err(ours, want) < 1e-4
    step = load(pkg_dir)  # decode through the KV cache gives the prefill's logits
    assert rel_err(np.stack([step.logits([t], i) for i, t in enumerate(ids)]), ours) < 1e-5
    if weights == "f32":  # the norms matter: without them the logits are far off (the test can see a missing norm)
        engine = load(pkg_dir)
        for lw in engine.model.weights.layers:  # type: ignore[attr-defined]
            lw.q_norm = lw.k_norm = None
        assert rel_err(engine.logits(ids, 0, all_logits=True), want) > 1e-2


def test_gguf_package_logits_match(tiny_hf, tmp_path: Path) -> None:
    hf = tiny_hf("qwen3")
    engine = load(prepare(hf_to_gguf(hf, tmp_path / "m.gguf"), tmp_path / "pkg", Options(weights="f32")))
    ids = engine.tokenizer.encode(PROMPT).ids
    assert rel_err(engine.logits(ids, 0, all_logits=True), hf_logits(hf, ids)) < 1e-4


@pytest.mark.parametrize("change, message", [
    ({"model_type": "qwen3_moe"}, "model_type 'qwen3_moe' is not supported"),
    ({"use_sliding_window": True}, "sliding-window attention"),
    ({"layer_types": ["full_attention", "sliding_attention"]}, "sliding-window attention"),
    ({"attention_bias": True}, "attention_bias"),
])
def test_hf_refuses_what_it_does_not_implement(tiny_hf, tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(UnsupportedError, match=message):
        read_hf_folder(edited_hf_copy(tiny_hf("qwen3"), tmp_path / "edited", change))


def test_gguf_refuses_moe_and_sliding_window(tiny_hf, tmp_path: Path) -> None:
    src = hf_to_gguf(tiny_hf("qwen3"), tmp_path / "m.gguf")
    for arch, extra, message in [("qwen3moe", None, "architecture 'qwen3moe' is not supported"),
                                 ("qwen3", ("qwen3.attention.sliding_window", 64), "sliding_window")]:
        out = rewrite_gguf(src, tmp_path / f"{arch}-{bool(extra)}.gguf", arch,
                           add=(lambda w, e=extra: w.add_uint32(*e)) if extra else None)
        with pytest.raises(UnsupportedError, match=message):
            read_gguf(out)


def test_old_readers_refuse_and_other_packages_keep_their_version(tiny_hf, tmp_path: Path) -> None:
    pkg_dir = prepare(tiny_hf("qwen3"), tmp_path / "pkg", Options(weights="f32"))
    mpath = pkg_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    for version in (1, 2):  # a reader of these versions would ignore the norms: such a manifest is invalid
        mpath.write_text(json.dumps(manifest | {"format_version": version}))
        with pytest.raises(PackageError, match="needs version 3 \\(qk_norm\\)"):
            open_package(pkg_dir)
    for arch in ("llama", "qwen2"):
        m = json.loads((prepare(tiny_hf(arch), tmp_path / arch, Options(weights="f32")) / "manifest.json").read_text())
        assert m["format_version"] == 1 and "qk_norm" not in m["config"]
