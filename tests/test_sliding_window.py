"""Mistral-style sliding-window attention outside Gemma 3 and Phi-3 is refused or handled, never ignored: HF
model_type mistral is refused; a llama config.json with sliding_window below max_position_embeddings (a Mistral model
labelled llama: transformers' LlamaModel ignores the key) gets its context capped at the window, where no key is
masked either way; qwen2/qwen3's sliding_window counts only with use_sliding_window (refused: tests/test_qwen3.py);
a llama GGUF with attention.sliding_window is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import edited_hf_copy, hf_to_gguf, rewrite_gguf

from model_prep.errors import UnsupportedError
from model_prep.gguf_source import read_gguf
from model_prep.hf_source import read_hf_folder


def test_hf_mistral_is_refused(tiny_hf, tmp_path: Path) -> None:
    for window in (4096, None):  # Mistral 7B v0.1 (window 4096) and v0.2+ (none) alike
        with pytest.raises(UnsupportedError, match="model_type 'mistral' is not supported"):
            read_hf_folder(edited_hf_copy(tiny_hf("llama"), tmp_path / f"m{window}",
                                          {"model_type": "mistral", "sliding_window": window}))


def test_hf_llama_with_a_window_is_capped_there(tiny_hf, tmp_path: Path) -> None:
    base = read_hf_folder(tiny_hf("llama"))
    assert base.config.context_length == 256 and not any("sliding_window" in n for n in base.notes)
    ckpt = read_hf_folder(edited_hf_copy(tiny_hf("llama"), tmp_path / "w40", {"sliding_window": 40}))
    assert ckpt.config.context_length == 40
    assert any(n.startswith("context capped at 40 tokens (sliding_window, Mistral-style") for n in ckpt.notes)
    assert ckpt.config.sliding_window is None and ckpt.config.layer_types is None  # no window layers: plain llama
    for window in (256, 4096, None):  # a window not below the context changes nothing
        same = read_hf_folder(edited_hf_copy(tiny_hf("llama"), tmp_path / f"w{window}", {"sliding_window": window}))
        assert same.config == base.config and same.notes == base.notes
    # qwen2: sliding_window without use_sliding_window is unused by transformers (Qwen2.5 configs ship it so)
    qwen = read_hf_folder(edited_hf_copy(tiny_hf("qwen2"), tmp_path / "q", {"sliding_window": 40,
                                                                             "use_sliding_window": False}))
    assert qwen.config.context_length == 256
    with pytest.raises(UnsupportedError, match="sliding-window attention"):
        read_hf_folder(edited_hf_copy(tiny_hf("qwen2"), tmp_path / "q2", {"sliding_window": 40,
                                                                           "use_sliding_window": True}))


def test_gguf_llama_with_a_window_is_refused(tiny_hf, tmp_path: Path) -> None:
    src = hf_to_gguf(tiny_hf("llama"), tmp_path / "m.gguf")
    assert read_gguf(src).config.context_length == 256
    out = rewrite_gguf(src, tmp_path / "w.gguf", add=lambda w: w.add_uint32("llama.attention.sliding_window", 64))
    with pytest.raises(UnsupportedError, match=r"llama\.attention\.sliding_window \(sliding-window attention\)"):
        read_gguf(out)
