"""Gemma 3 (text) along the prepare path (issue 12): tiny random Gemma3ForCausalLM checkpoints written by transformers
(embedding scaled by sqrt(hidden), (1 + w) RMSNorm, pre- and post-norms around attention and MLP, q/k norms, GeGLU,
sliding-window layers (window 8) interleaved with full ones, a RoPE base per layer type, query_pre_attn_scalar !=
head_dim), read as an HF folder and as a llama.cpp-style GGUF (norms stored as 1 + w), stored in a format-version-5
package, and the reference engine's logits against transformers' at f32, q8 and q4 over 20 tokens (longer than the
window, so the window matters); what the engines do not compute (soft-capping, other RoPE scalings, the multimodal
model) is refused with a message naming it. The real gemma-3-270m (Q4_K_M GGUF from PyPI) answers "Paris"."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from tiny_models import (
    GEMMA3_ROPE,
    edited_hf_copy,
    gemma3_to_gguf,
    hf_logits,
    rel_err,
    rewrite_gguf,
    transformers_logits,
    write_tiny_gemma3,
)

from model_prep import format as fmt
from model_prep.errors import InputError, PackageError, UnsupportedError
from model_prep.gguf_source import read_gguf
from model_prep.hf_source import read_hf_folder
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load
from model_prep.reference.forward import RunState

TEXT = "The pump bearing runs hot at 78 degrees; check the lube oil and the strainer now."


@pytest.fixture(scope="module")
def gemma3_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gemma3(tmp_path_factory.mktemp("gemma3") / "hf")


def _ids(engine: object) -> list[int]:
    ids = engine.tokenizer.encode(TEXT).ids[:20]  # type: ignore[attr-defined]
    assert len(ids) == 20  # longer than the window (8): the sliding layers drop the oldest keys
    return ids


def test_config_from_hf(gemma3_hf: Path) -> None:
    cfg = read_hf_folder(gemma3_hf).config
    assert (cfg.architecture, cfg.qk_norm, cfg.post_norms, cfg.hidden_act) == ("gemma3", True, True, "gelu_tanh")
    assert cfg.embedding_scale == float(np.float32(8.0)) and cfg.attention_scale == 48.0 ** -0.5
    assert cfg.head_dim == 32 and cfg.num_heads * cfg.head_dim != cfg.hidden_size and cfg.tie_word_embeddings
    assert cfg.sliding_window == 8 and cfg.layer_types == ("sliding", "full", "sliding", "sliding")
    assert (cfg.rope_theta, cfg.rope_theta_sliding, cfg.rope_freq_factors) == (1e6, 100.0, None)
    assert cfg.rope_layout == fmt.ROPE_HALF and cfg.format_version == 5


@pytest.mark.parametrize("weights", ["f32", "q8", "q4"])
def test_reference_logits_match_transformers(gemma3_hf: Path, tmp_path: Path, weights: str) -> None:
    pkg_dir = prepare(gemma3_hf, tmp_path / weights, Options(weights=weights))
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    assert manifest["format_version"] == fmt.FORMAT_VERSION_GEMMA3 == 5
    c = manifest["config"]
    assert (c["architecture"], c["hidden_act"], c["post_norms"], c["qk_norm"], c["sliding_window"]) == (
        "gemma3", "gelu_tanh", True, True, 8)
    assert c["layer_types"] == ["sliding", "full", "sliding", "sliding"] and c["rope_theta_sliding"] == 100.0
    for n in ("post_attention_norm.weight", "post_ffw_norm.weight", "attn_norm.weight", "ffn_norm.weight"):
        assert manifest["tensors"][f"blk.0.{n}"]["storage"] == "f32"
    notes = json.loads((pkg_dir / "report.json").read_text())["notes"]
    assert any("format version 5" in n for n in notes), notes
    engine = load(pkg_dir)
    ids = _ids(engine)
    ours = engine.logits(ids, 0, all_logits=True)
    want = transformers_logits(gemma3_hf, pkg_dir, ids, weights)
    assert rel_err(ours, want) < 1e-4
    step = load(pkg_dir)  # decode through the KV cache gives the prefill's logits
    assert rel_err(np.stack([step.logits([t], i) for i, t in enumerate(ids)]), ours) < 1e-5
    if weights == "f32":  # each Gemma feature matters: the test sees any one of them left out
        config = engine.model.config  # type: ignore[attr-defined]
        for change in ({"sliding_window": 10_000}, {"rope_theta_sliding": None}, {"attention_scale": None},
                       {"embedding_scale": None}, {"hidden_act": "silu"}):
            other = load(pkg_dir)
            other.model.config = replace(config, **change)  # type: ignore[attr-defined]
            other.model.state = RunState(other.model.config, other.context)  # type: ignore[attr-defined]
            assert rel_err(other.logits(ids, 0, all_logits=True), want) > 1e-3, change


def test_reference_logits_with_linear_rope_on_full_layers(tmp_path: Path) -> None:
    """Gemma 3 4B and up: linear scaling (factor 8) on the full layers only, as config.rope_freq_factors."""
    rope = json.loads(json.dumps(GEMMA3_ROPE))
    rope["full_attention"] |= {"rope_type": "linear", "factor": 8.0}
    hf = write_tiny_gemma3(tmp_path / "hf", rope_parameters=rope)
    cfg = read_hf_folder(hf).config
    assert cfg.rope_freq_factors == (8.0,) * 16 and cfg.rope_theta_sliding == 100.0
    engine = load(prepare(hf, tmp_path / "pkg", Options(weights="f32")))
    ids = _ids(engine)
    assert rel_err(engine.logits(ids, 0, all_logits=True), hf_logits(hf, ids)) < 1e-4


def test_older_config_keys(gemma3_hf: Path, tmp_path: Path) -> None:
    """A config.json as transformers 4.x wrote it: rope_theta / rope_local_base_freq instead of rope_parameters, and
    sliding_window_pattern instead of layer_types (here every 2nd layer full). transformers 5.23 reads it so too."""
    hf = edited_hf_copy(gemma3_hf, tmp_path / "old", {"rope_parameters": None, "rope_theta": 1_000_000.0,
                                                      "rope_local_base_freq": 100.0, "layer_types": None,
                                                      "sliding_window_pattern": 2})
    cfg = read_hf_folder(hf).config
    assert cfg.layer_types == ("sliding", "full", "sliding", "full") and cfg.rope_theta_sliding == 100.0
    engine = load(prepare(hf, tmp_path / "pkg", Options(weights="f32")))
    ids = _ids(engine)
    assert rel_err(engine.logits(ids, 0, all_logits=True), hf_logits(hf, ids)) < 1e-4


def test_gguf_logits_match(tmp_path: Path) -> None:
    """What llama.cpp's gemma3 reader assumes (every 6th layer full, sliding base 10000, scale 1/sqrt(head_dim)) on a
    6-layer model written so; and the 4-layer one (its own layer types and sliding base) through the
    sliding_window_pattern / rope.freq_base_swa keys, at Q8_0 too (carried exactly)."""
    hf6 = write_tiny_gemma3(tmp_path / "hf6", layers=6, query_pre_attn_scalar=32,
                            rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                             "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    hf4 = write_tiny_gemma3(tmp_path / "hf4", seed=1, query_pre_attn_scalar=32)
    for hf, keys, qtype in ((hf6, False, QT.F32), (hf4, True, QT.F32), (hf4, True, QT.Q8_0)):
        src = gemma3_to_gguf(hf, tmp_path / f"{hf.name}-{qtype.name}.gguf", qtype, layer_keys=keys)
        cfg = read_gguf(src).config
        assert cfg.layer_types == read_hf_folder(hf).config.layer_types and cfg.post_norms and cfg.qk_norm
        assert cfg.attention_scale == float(np.float32(32 ** -0.5)) and cfg.embedding_scale == 8.0  # as llama.cpp
        pkg_dir = prepare(src, tmp_path / f"pkg-{hf.name}-{qtype.name}", Options(weights="f32"))
        engine = load(pkg_dir)
        ids = _ids(engine)
        want = transformers_logits(hf, pkg_dir, ids, "f32" if qtype == QT.F32 else "q8")
        assert rel_err(engine.logits(ids, 0, all_logits=True), want) < 1e-4, (hf.name, qtype)


@pytest.mark.parametrize("change, message", [
    ({"final_logit_softcapping": 30.0}, "final_logit_softcapping = 30.0 \\(logit soft-capping\\) is not supported"),
    ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping = 50.0 \\(logit soft-capping\\) is not supported"),
    ({"rope_parameters": {"full_attention": {"rope_type": "yarn", "factor": 4.0}}},
     "RoPE scaling 'yarn' on gemma3's full_attention layers is not supported"),
    ({"rope_parameters": {"sliding_attention": {"rope_type": "linear", "factor": 2.0}}},
     "RoPE scaling 'linear' on gemma3's sliding_attention layers is not supported"),
    ({"hidden_activation": "gelu"}, "hidden_activation 'gelu'"),
    ({"model_type": "gemma3"}, "only Gemma 3 text models are supported"),
])
def test_hf_refuses_what_it_does_not_implement(gemma3_hf: Path, tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(UnsupportedError, match=message):
        read_hf_folder(edited_hf_copy(gemma3_hf, tmp_path / "edited", change))


def test_gguf_refuses_softcapping_and_needs_the_window(gemma3_hf: Path, tmp_path: Path) -> None:
    src = gemma3_to_gguf(gemma3_hf, tmp_path / "m.gguf")
    out = rewrite_gguf(src, tmp_path / "capped.gguf", add=lambda w: w.add_float32("gemma3.final_logit_softcapping",
                                                                                 30.0))
    with pytest.raises(UnsupportedError, match=r"gemma3\.final_logit_softcapping = 30\.0 \(logit soft-capping\)"):
        read_gguf(out)
    out = rewrite_gguf(src, tmp_path / "nowindow.gguf", drop="gemma3.attention.sliding_window")
    with pytest.raises(InputError, match=r"lacks gemma3\.attention\.sliding_window"):
        read_gguf(out)


def test_old_readers_refuse_and_the_config_is_checked(gemma3_hf: Path, tmp_path: Path) -> None:
    pkg_dir = prepare(gemma3_hf, tmp_path / "pkg", Options(weights="f32"))
    mpath = pkg_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    mpath.write_text(json.dumps(manifest | {"format_version": 4}))
    with pytest.raises(PackageError, match="needs version 5 \\(qk_norm, embedding_scale, post_norms"):
        open_package(pkg_dir)
    for bad in ({"layer_types": ["sliding"]}, {"hidden_act": "relu"}, {"sliding_window": 0},
                {"attention_scale": "x"}, {"sliding_window": None}):
        mpath.write_text(json.dumps(manifest | {"config": manifest["config"] | bad}))
        with pytest.raises(PackageError, match="manifest config is invalid"):
            open_package(pkg_dir)


def _transformers_from_gguf(path: Path, config: dict) -> Any:
    """transformers' Gemma3ForCausalLM with the GGUF's weights as gguf dequantizes them (norms back to w: the file holds
    1 + w), configured as llama.cpp reads the file: the independent side of the real-weights test. (transformers'
    own GGUF loading needs accelerate, which is not installed.)"""
    import gguf
    import torch
    import transformers

    cfg = transformers.Gemma3TextConfig(
        vocab_size=config["vocab_size"], hidden_size=config["hidden_size"], head_dim=config["head_dim"],
        intermediate_size=config["intermediate_size"], num_hidden_layers=config["num_layers"],
        num_attention_heads=config["num_heads"], num_key_value_heads=config["num_kv_heads"],
        rms_norm_eps=config["rms_norm_eps"], sliding_window=512, query_pre_attn_scalar=256, tie_word_embeddings=True,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    model = transformers.Gemma3ForCausalLM(cfg).eval()
    names = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
             "attn_v": "self_attn.v_proj", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
             "attn_output": "self_attn.o_proj", "post_attention_norm": "post_attention_layernorm",
             "ffn_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
             "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    state = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        values = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
        values = values.reshape([int(d) for d in reversed(t.shape)])
        short = t.name.removesuffix(".weight")
        if short.startswith("blk."):
            _, layer, short = short.split(".", 2)
            name = f"model.layers.{layer}.{names[short]}.weight"
        else:
            name = {"token_embd": "model.embed_tokens.weight", "output_norm": "model.norm.weight"}[short]
        state[name] = torch.from_numpy(values - np.float32(1) if t.name.endswith("norm.weight") else values)
    assert model.load_state_dict(state, strict=False).missing_keys == ["lm_head.weight"]  # tied
    return model


@pytest.mark.slow
def test_real_gemma3_270m_answers_paris(gemma3_270m_gguf: Path, tmp_path: Path) -> None:
    """The real gemma-3-270m (base model, Q4_K_M: Q4_K / Q6_K / Q5_0 / Q8_0 carried exactly): the reference's logits
    equal transformers' Gemma3ForCausalLM on the same (dequantized) weights, and its greedy answer to a capital-of-
    France question (BOS first, as the file says) is Paris. (A base model: "The capital of France is" goes on " the
    capital of the country of France." in both.)"""
    import torch

    pkg_dir = prepare(gemma3_270m_gguf, tmp_path / "pkg", Options())
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    c = manifest["config"]
    assert (c["architecture"], c["head_dim"], c["num_layers"], c["sliding_window"]) == ("gemma3", 256, 18, 512)
    assert c["layer_types"] == ["full" if i % 6 == 5 else "sliding" for i in range(18)]
    assert c["attention_scale"] == 1 / 16 and c["rope_theta_sliding"] == 10000.0 and c["rope_theta"] == 1e6
    # no chat template in the file: ChatML after the <bos> the file asks for (engines encode chats without specials)
    assert manifest["chat_template"].startswith("{{ bos_token }}{% for message in messages %}")
    engine = load(pkg_dir, context=64)
    assert engine.prompt_ids([{"role": "user", "content": "hi"}])[0] == 2  # <bos>
    ids = engine.tokenizer.encode("Question: What is the capital of France?\nAnswer:").ids
    assert ids[0] == 2  # <bos>
    ours = engine.logits(ids, 0, all_logits=True)
    model = _transformers_from_gguf(gemma3_270m_gguf, c)
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    assert rel_err(ours, want) < 1e-4
    # teacher-forced over a longer text too: every position's top-1 token is transformers' (agreement 1.00)
    text_ids = engine.tokenizer.encode("Generator 2 tripped on overcurrent at 03:40; the crew reset the breaker after "
                                       "checking the cable run, and the load came back within limits. Next: log the "
                                       "event, inspect the terminals for heat marks, and report to the chief.").ids
    long_ours = engine.logits(text_ids, 0, all_logits=True)
    with torch.no_grad():
        long_want = model(torch.tensor([text_ids])).logits[0].numpy()
    assert len(text_ids) > 40 and rel_err(long_ours, long_want) < 1e-4
    assert (long_ours.argmax(-1) == long_want.argmax(-1)).all()
    out = [int(np.argmax(ours[-1]))]
    for _ in range(2):
        out.append(int(np.argmax(engine.logits([out[-1]], len(ids) + len(out) - 1))))
    text = engine.tokenizer.decode(out)
    assert "Paris" in text, text
