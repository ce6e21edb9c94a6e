"""Phi-3 / Phi-3.5-mini along the prepare path (issue 12): a tiny random checkpoint written by transformers (fused
qkv_proj and gate_up_proj, longrope with head_dim/2 short and long factors and an original context of 64 inside 256),
read as an HF folder and as a llama.cpp-style GGUF (attn_qkv, ffn_up holding gate and up, rope_factors_short/long,
rope.scaling.attn_factor), split into the package's q/k/v and gate/up, stored as a format-version-4 package
(config.rope_freq_factors = the short factors, config.rope_attn_factor, context capped at the original length), and
the reference engine's logits against transformers' at f32, q8 and q4 over every position of that context; what is
not implemented (partial RoPE, yarn, Phi-3-small) is refused with a message naming it. With prepare --long-context:
the long factors and the whole context, against transformers' logits of one 80-token pass past the original length."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from gguf import GGMLQuantizationType as QT
from tiny_models import (
    PHI3_LONGROPE,
    PHI3_ORIGINAL,
    edited_hf_copy,
    hf_logits,
    hf_to_gguf,
    make_hf,
    rel_err,
    transformers_logits,
)

from model_prep import format as fmt
from model_prep import rope
from model_prep.errors import InputError, PackageError, UnsupportedError
from model_prep.gguf_source import read_gguf
from model_prep.hf_source import read_hf_folder
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load

HEAD_DIM = 16
TEXT = "The pump bearing runs hot at 78 degrees; check the lube oil and the strainer. " * 30


@pytest.fixture(scope="module")
def phi3_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hf(tmp_path_factory.mktemp("phi3"), "phi3", init_std=0.05)


def _ids(engine, n: int = PHI3_ORIGINAL) -> list[int]:
    ids = engine.tokenizer.encode(TEXT).ids[:n]
    assert len(ids) == n
    return ids


def test_config_matches_transformers_rope(phi3_hf: Path, tmp_path: Path) -> None:
    ckpt = read_hf_folder(phi3_hf)
    cfg = ckpt.config
    assert (cfg.architecture, cfg.rope_layout, cfg.tie_word_embeddings, cfg.attention_bias) == ("phi3", "half",
                                                                                               False, False)
    assert cfg.context_length == PHI3_ORIGINAL  # capped: past it transformers switches to the long factors
    assert any("context capped at 64" in n for n in ckpt.notes), ckpt.notes
    assert cfg.rope_freq_factors == tuple(PHI3_LONGROPE["short_factor"])
    model = transformers.AutoModelForCausalLM.from_pretrained(phi3_hf, dtype=torch.float32)
    emb = model.model.rotary_emb
    assert cfg.rope_attn_factor == pytest.approx(emb.attention_scaling, rel=1e-12) and cfg.rope_attn_factor > 1.1
    np.testing.assert_allclose(rope.inv_freq(cfg.rope_theta, HEAD_DIM, cfg.rope_freq_factors),
                               emb.original_inv_freq.double().numpy(), rtol=1e-6)
    # transformers' cos/sin for positions inside the original context equal our table (f32 rounding)
    cos, sin = rope.cos_sin(cfg.rope_theta, HEAD_DIM, cfg.rope_freq_factors, cfg.rope_attn_factor, PHI3_ORIGINAL)
    hcos, hsin = emb(torch.zeros(1), torch.arange(PHI3_ORIGINAL)[None])
    np.testing.assert_allclose(cos, hcos[0, :, : HEAD_DIM // 2].numpy(), atol=2e-6)
    np.testing.assert_allclose(sin, hsin[0, :, : HEAD_DIM // 2].numpy(), atol=2e-6)
    # fused rows split in order: q, k, v and gate, up
    by = {t.name: t for t in ckpt.tensors}
    state = model.state_dict()
    qkv = state["model.layers.1.self_attn.qkv_proj.weight"].numpy()
    q, kv = 4 * HEAD_DIM, 2 * HEAD_DIM
    assert np.array_equal(by["blk.1.attn_q.weight"].load_f32(), qkv[:q])
    assert np.array_equal(by["blk.1.attn_v.weight"].load_f32(), qkv[q + kv:])
    gate_up = state["model.layers.1.mlp.gate_up_proj.weight"].numpy()
    assert np.array_equal(by["blk.1.ffn_gate.weight"].load_f32(), gate_up[:128])
    assert np.array_equal(by["blk.1.ffn_up.weight"].load_f32(), gate_up[128:])
    g = read_gguf(hf_to_gguf(phi3_hf, tmp_path / "m.gguf"))
    assert g.config.context_length == PHI3_ORIGINAL and g.config.rope_layout == "half"
    np.testing.assert_allclose(g.config.rope_freq_factors, cfg.rope_freq_factors, rtol=1e-7)
    assert g.config.rope_attn_factor == pytest.approx(cfg.rope_attn_factor, rel=1e-7)


@pytest.mark.parametrize("weights", ["f32", "q8", "q4"])
def test_reference_logits_match_transformers(phi3_hf: Path, tmp_path: Path, weights: str) -> None:
    pkg_dir = prepare(phi3_hf, tmp_path / weights, Options(weights=weights))
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    assert manifest["format_version"] == fmt.FORMAT_VERSION_ROPE_ATTN_FACTOR == 4
    assert manifest["config"]["context_length"] == PHI3_ORIGINAL and manifest["config"]["architecture"] == "phi3"
    assert not any("qkv" in n or "gate_up" in n for n in manifest["tensors"])
    notes = json.loads((pkg_dir / "report.json").read_text())["notes"]
    assert any("format version 4" in n for n in notes) and any("context capped" in n for n in notes), notes
    engine = load(pkg_dir, context=256)
    ids = _ids(engine)  # every position of the (capped) context: 0..63
    ours = engine.logits(ids, 0, all_logits=True)
    want = transformers_logits(phi3_hf, pkg_dir, ids, weights)
    assert rel_err(ours, want) < 1e-4
    step = load(pkg_dir)  # decode through the KV cache gives the prefill's logits
    assert rel_err(np.stack([step.logits([t], i) for i, t in enumerate(ids)]), ours) < 1e-5
    if weights == "f32":  # the scaling matters: without the attention factor, or with plain RoPE, logits are far off
        for change in ({"rope_attn_factor": None}, {"rope_freq_factors": None}):
            cfg = engine.config.__class__(**(engine.config.__dict__ | change))
            from model_prep.reference.forward import RunState

            engine.model.state = RunState(cfg, PHI3_ORIGINAL)  # type: ignore[attr-defined]
            engine._cached = []
            assert rel_err(engine.logits(ids, 0, all_logits=True), want) > 1e-3


def test_gguf_package_logits_match(phi3_hf: Path, tmp_path: Path) -> None:
    engine = load(prepare(hf_to_gguf(phi3_hf, tmp_path / "m.gguf"), tmp_path / "pkg", Options(weights="f32")))
    ids = _ids(engine)
    assert rel_err(engine.logits(ids, 0, all_logits=True), hf_logits(phi3_hf, ids)) < 1e-4
    # Q8_0 carried exactly through the split of attn_qkv and ffn_up
    pkg_dir = prepare(hf_to_gguf(phi3_hf, tmp_path / "q8.gguf", QT.Q8_0), tmp_path / "q8", Options())
    report = json.loads((pkg_dir / "report.json").read_text())["tensors"]
    for n in ("attn_q", "attn_k", "attn_v", "ffn_gate", "ffn_up"):
        assert report[f"blk.0.{n}.weight"]["carried"] and report[f"blk.0.{n}.weight"]["source_type"] == "Q8_0"
    engine = load(pkg_dir)
    want = transformers_logits(phi3_hf, pkg_dir, ids, "q8")
    assert rel_err(engine.logits(ids, 0, all_logits=True), want) < 1e-4


def test_end_ids_and_template(phi3_hf: Path, tmp_path: Path) -> None:
    pkg_dir = prepare(phi3_hf, tmp_path / "pkg", Options(weights="f32"))
    engine = load(pkg_dir)
    tok = engine.tokenizer
    end, eot = tok.token_to_id("<|end|>"), tok.token_to_id("<|endoftext|>")
    assert engine.generation["eos_token_ids"] == [end, eot]
    g = read_gguf(hf_to_gguf(phi3_hf, tmp_path / "m.gguf")).generation["eos_token_ids"]
    assert g[0] == eot and end in g  # GGUF: eos, then every end text (llama.cpp's set)
    from model_prep.reference.chat_template import render

    text = render(engine.template, [{"role": "user", "content": "hi"}], add_generation_prompt=True,
                  eos_token="<|endoftext|>")
    assert text == "<|user|>\nhi<|end|>\n<|assistant|>\n"


@pytest.mark.parametrize("change, error, message", [
    ({"partial_rotary_factor": 0.75}, UnsupportedError, "partial_rotary_factor"),
    ({"rope_parameters": {"partial_rotary_factor": 0.75}}, UnsupportedError, "partial_rotary_factor"),
    ({"rope_parameters": {"rope_type": "yarn"}}, UnsupportedError, "yarn"),
    ({"rope_parameters": {"mscale": 2.0}}, UnsupportedError, "mscale"),
    ({"rope_parameters": {"long_factor": [1.0] * 4}}, InputError, "long_factor has 4 values"),
    ({"model_type": "phi3small"}, UnsupportedError, "phi3small"),
])
def test_hf_refuses_what_it_does_not_implement(phi3_hf: Path, tmp_path: Path, change: dict, error: type,
                                               message: str) -> None:
    with pytest.raises(error, match=message):
        read_hf_folder(edited_hf_copy(phi3_hf, tmp_path / "edited", change))


def test_context_capped_below_sliding_window_and_without_scaling(phi3_hf: Path, tmp_path: Path) -> None:
    ckpt = read_hf_folder(edited_hf_copy(phi3_hf, tmp_path / "edited", {"sliding_window": 47}))
    assert ckpt.config.context_length == 47 and any("sliding_window" in n for n in ckpt.notes)
    plain = tmp_path / "plain"
    plain.mkdir()
    ckpt = read_hf_folder(edited_hf_copy(phi3_hf, plain / "edited", {"rope_parameters": None, "rope_scaling": None}))
    # Phi-3-mini-4k: no scaling, no attention factor: a version-1 package of architecture phi3
    assert ckpt.config.rope_freq_factors is None and ckpt.config.rope_attn_factor is None
    assert ckpt.config.context_length == 256 and ckpt.config.format_version == 1


def test_old_readers_refuse_and_other_packages_keep_their_version(phi3_hf: Path, tmp_path: Path) -> None:
    pkg_dir = prepare(phi3_hf, tmp_path / "pkg", Options(weights="f32"))
    mpath = pkg_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    for version in (1, 2, 3):
        mpath.write_text(json.dumps(manifest | {"format_version": version}))
        with pytest.raises(PackageError, match="needs version 4 \\(rope_freq_factors, rope_attn_factor\\)"):
            open_package(pkg_dir)


LONG = 80  # tokens of one forward pass past the original 64: transformers uses the long factors on all of them


def test_long_context_matches_transformers_past_the_original_length(phi3_hf: Path, tmp_path: Path) -> None:
    pkg_dir = prepare(phi3_hf, tmp_path / "long", Options(weights="f32", long_context=True))
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    cfg = manifest["config"]
    assert cfg["context_length"] == 256  # max_position_embeddings: not capped
    assert cfg["rope_freq_factors"] == PHI3_LONGROPE["long_factor"] != PHI3_LONGROPE["short_factor"]
    assert manifest["source"]["options"]["long_context"] is True
    notes = json.loads((pkg_dir / "report.json").read_text())["notes"]
    assert any(n.startswith("--long-context: longrope's long factors") for n in notes), notes
    assert not any("context capped" in n for n in notes), notes
    engine = load(pkg_dir, context=256)
    model = transformers.AutoModelForCausalLM.from_pretrained(phi3_hf, dtype=torch.float32)
    emb = model.model.rotary_emb
    assert engine.config.rope_attn_factor == pytest.approx(emb.attention_scaling, rel=1e-12)
    # the engines' RoPE tables (rope.cos_sin, the reference's RunState) are transformers' cos/sin of an 80-token pass
    hcos, hsin = emb(torch.zeros(1), torch.arange(LONG)[None])
    cos, sin = rope.cos_sin(engine.config.rope_theta, HEAD_DIM, engine.config.rope_freq_factors,
                            engine.config.rope_attn_factor, LONG)
    np.testing.assert_allclose(cos, hcos[0, :, : HEAD_DIM // 2].numpy(), atol=2e-6)
    np.testing.assert_allclose(sin, hsin[0, :, : HEAD_DIM // 2].numpy(), atol=2e-6)
    ids = _ids(engine, LONG)
    ours = engine.logits(ids, 0, all_logits=True)
    assert np.array_equal(engine.model.state.cos[:LONG], cos)  # type: ignore[attr-defined]
    want = hf_logits(phi3_hf, ids)
    assert rel_err(ours, want) < 1e-4
    # the short factors (what the package holds without the option) are far off for this pass
    from model_prep.reference.forward import RunState

    short = engine.config.__class__(**(engine.config.__dict__ | {"rope_freq_factors": PHI3_LONGROPE["short_factor"]}))
    engine.model.state = RunState(short, 256)  # type: ignore[attr-defined]
    engine._cached = []
    assert rel_err(engine.logits(ids, 0, all_logits=True), want) > 1e-3


def test_long_context_from_gguf_and_what_it_leaves_alone(phi3_hf: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    assert main(["prepare", str(phi3_hf), "--out", str(tmp_path / "plan"), "--plan", "--long-context"]) == 0
    assert "note: --long-context: longrope's long factors on every position, context 256" in capsys.readouterr().out
    hf = read_hf_folder(phi3_hf, long_context=True).config
    g = read_gguf(hf_to_gguf(phi3_hf, tmp_path / "m.gguf"), long_context=True)
    # llama.cpp's converter's rope_factors_long.weight, the file's context_length, the same attention factor
    assert g.config.context_length == hf.context_length == 256
    np.testing.assert_allclose(g.config.rope_freq_factors, PHI3_LONGROPE["long_factor"], rtol=1e-7)
    assert g.config.rope_attn_factor == pytest.approx(hf.rope_attn_factor, rel=1e-7)
    assert any(n.startswith("--long-context: longrope's long factors") for n in g.notes), g.notes
    # without the option: short factors, capped at the original length, and no options key (cache keys unchanged)
    assert read_gguf(tmp_path / "m.gguf").config.context_length == read_hf_folder(phi3_hf).config.context_length \
        == PHI3_ORIGINAL
    assert "long_context" not in Options().to_dict() and Options(long_context=True).to_dict()["long_context"]
    # phi3's sliding_window still caps the context, and the note says so
    ckpt = read_hf_folder(edited_hf_copy(phi3_hf, tmp_path / "window", {"sliding_window": 100}), long_context=True)
    assert ckpt.config.context_length == 100 and ckpt.config.rope_freq_factors == tuple(PHI3_LONGROPE["long_factor"])
    assert any("context 256 tokens (max_position_embeddings, capped at 100 by sliding_window)" in n
               for n in ckpt.notes), ckpt.notes
    # an original length not below max_position_embeddings: transformers never takes the long factors; nothing changes
    same = read_hf_folder(edited_hf_copy(phi3_hf, tmp_path / "short", {"original_max_position_embeddings": 256}),
                          long_context=True)
    assert same.config.rope_freq_factors == tuple(PHI3_LONGROPE["short_factor"])
    assert any("--long-context changes nothing" in n for n in same.notes), same.notes
