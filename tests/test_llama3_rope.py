"""Llama 3.x "llama3" RoPE scaling (issue 12): read from HF folders (transformers 5 rope_parameters and the older
rope_scaling) and from GGUF (llama.cpp's rope_freqs.weight), stored as config.rope_freq_factors in a format-version-2
package, applied by the reference engine: logits against transformers' at positions past
original_max_position_embeddings, at f32, q8 and q4."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from tiny_models import edited_hf_copy, hf_logits, hf_to_gguf, make_hf, rel_err, rewrite_gguf, transformers_logits

from model_prep import format as fmt
from model_prep import rope
from model_prep.errors import InputError, PackageError, UnsupportedError
from model_prep.gguf_source import read_gguf
from model_prep.hf_source import read_hf_folder
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load

# short original context (64) so that a tiny test runs far past it; head_dim 16 has one high, two medium and five
# low frequencies under these parameters (checked below), so every branch of the scaling is used
LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
HEAD_DIM = 16


@pytest.fixture(scope="module")
def llama3_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hf(tmp_path_factory.mktemp("llama3"), "llama", init_std=0.05, hidden=64, heads=4, kv_heads=2,
                   intermediate=128, rope_parameters=LLAMA3)


def _long_ids(engine_tokenizer, n: int = 200) -> list[int]:
    text = "The pump bearing runs hot at 78 degrees; check the lube oil and the strainer. " * 30
    ids = engine_tokenizer.encode(text).ids[:n]
    assert len(ids) == n
    return ids


def test_factors_match_transformers_inv_freq(llama3_hf: Path) -> None:
    factors = rope.llama3_factors(10000.0, HEAD_DIM, 8.0, 1.0, 4.0, 64)
    assert factors[0] == 1.0 and 1.0 < factors[1] < factors[2] < 8.0 and factors[3:] == [8.0] * 5
    model = transformers.AutoModelForCausalLM.from_pretrained(llama3_hf, dtype=torch.float32)
    want = model.model.rotary_emb.inv_freq.double().numpy()
    np.testing.assert_allclose(rope.inv_freq(10000.0, HEAD_DIM, factors), want, rtol=1e-6)
    assert model.model.rotary_emb.attention_scaling == 1.0  # llama3 scales no attention: nothing else to carry


def test_hf_rope_parameters_and_legacy_rope_scaling_read_alike(llama3_hf: Path, tmp_path: Path) -> None:
    cfg = read_hf_folder(llama3_hf).config
    assert cfg.rope_freq_factors == tuple(rope.llama3_factors(10000.0, HEAD_DIM, 8.0, 1.0, 4.0, 64))
    # a pre-transformers-5 config.json: rope_theta at the top, the llama3 keys in rope_scaling
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for f in llama3_hf.iterdir():
        (legacy / f.name).symlink_to(f)
    raw = json.loads((llama3_hf / "config.json").read_text())
    params = raw.pop("rope_parameters")
    raw["rope_theta"] = params.pop("rope_theta")
    raw["rope_scaling"] = params
    (legacy / "config.json").unlink()
    (legacy / "config.json").write_text(json.dumps(raw))
    assert read_hf_folder(legacy).config == cfg


@pytest.mark.parametrize("change, error", [
    ({"rope_type": "yarn"}, UnsupportedError),
    ({"partial_rotary_factor": 0.5}, UnsupportedError),  # a key that changes the math: refused, never skipped
    ({"low_freq_factor": None}, InputError),
    ({"high_freq_factor": 0.5}, InputError),  # high <= low
])
def test_hf_refuses_what_it_cannot_represent(llama3_hf: Path, tmp_path: Path, change: dict, error: type) -> None:
    bad = edited_hf_copy(llama3_hf, tmp_path / "bad", {"rope_parameters": change})
    with pytest.raises(error):
        read_hf_folder(bad)


def test_gguf_rope_freqs_read_to_the_same_frequencies(llama3_hf: Path, tmp_path: Path) -> None:
    ckpt = read_gguf(hf_to_gguf(llama3_hf, tmp_path / "m.gguf"))
    assert "rope_freqs.weight" not in {t.name for t in ckpt.tensors}
    got = ckpt.config.rope_freq_factors
    assert got is not None
    # llama.cpp's converter (tests/tiny_models.py) stores f32: equal to ours within f32 rounding
    np.testing.assert_allclose(got, read_hf_folder(llama3_hf).config.rope_freq_factors, rtol=1e-7)


def test_gguf_refuses_linear_scaling_and_partial_rope(llama3_hf: Path, tmp_path: Path) -> None:
    src = hf_to_gguf(llama3_hf, tmp_path / "m.gguf")
    for key, value, message in [("llama.rope.scaling.factor", 4.0, "linear RoPE scaling"),
                                ("llama.rope.dimension_count", 8, "partial RoPE")]:

        def add(w: Any, key: str = key, value: float = value) -> None:
            (w.add_float32 if key.endswith("factor") else w.add_uint32)(key, value)

        out = rewrite_gguf(src, tmp_path / f"{key}.gguf", drop=key, add=add)
        with pytest.raises(UnsupportedError, match=message):
            read_gguf(out)


@pytest.mark.parametrize("weights", ["f32", "q8", "q4"])
def test_reference_logits_past_the_original_context(llama3_hf: Path, tmp_path: Path, weights: str) -> None:
    pkg_dir = prepare(llama3_hf, tmp_path / weights, Options(weights=weights))
    manifest = json.loads((pkg_dir / "manifest.json").read_text())
    assert manifest["format_version"] == fmt.FORMAT_VERSION_ROPE_FACTORS == 2
    assert len(manifest["config"]["rope_freq_factors"]) == HEAD_DIM // 2
    notes = json.loads((pkg_dir / "report.json").read_text())["notes"]
    assert any("format version 2" in n for n in notes), notes  # --plan and the report say so
    engine = load(pkg_dir, context=256)
    ids = _long_ids(engine.tokenizer)  # positions 0..199, past original_max_position_embeddings = 64
    ours = engine.logits(ids, 0, all_logits=True)
    want = transformers_logits(llama3_hf, pkg_dir, ids, weights)
    assert rel_err(ours, want) < 1e-4
    # without the scaling the long positions would differ: the test can see a wrong frequency
    plain = transformers.AutoModelForCausalLM.from_pretrained(llama3_hf, dtype=torch.float32,
                                                              rope_parameters={"rope_type": "default",
                                                                               "rope_theta": 10000.0})
    if weights == "f32":
        with torch.no_grad():
            unscaled = plain(torch.tensor([ids])).logits[0].numpy()
        assert rel_err(unscaled[64:], want[64:]) > 1e-2


def test_gguf_package_logits_match(llama3_hf: Path, tmp_path: Path) -> None:
    engine = load(prepare(hf_to_gguf(llama3_hf, tmp_path / "m.gguf"), tmp_path / "pkg", Options(weights="f32")),
                  context=256)
    ids = _long_ids(engine.tokenizer)
    assert rel_err(engine.logits(ids, 0, all_logits=True), hf_logits(llama3_hf, ids)) < 1e-4


def test_old_readers_refuse_and_new_readers_check(llama3_hf: Path, tmp_path: Path) -> None:
    pkg_dir = prepare(llama3_hf, tmp_path / "pkg", Options(weights="f32"))
    mpath = pkg_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    # a version-1 manifest that carries factors is inconsistent (a version-1 reader would ignore them)
    mpath.write_text(json.dumps(manifest | {"format_version": 1}))
    with pytest.raises(PackageError, match="needs version 2"):
        open_package(pkg_dir)
    manifest["config"]["rope_freq_factors"] = manifest["config"]["rope_freq_factors"][:-1]
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="rope_freq_factors has 7 values"):
        open_package(pkg_dir)


def test_packages_without_scaling_stay_version_1(tiny_hf, tmp_path: Path) -> None:
    manifest = json.loads((prepare(tiny_hf("llama"), tmp_path / "pkg", Options(weights="f32")) / "manifest.json")
                          .read_text())
    assert manifest["format_version"] == 1 and "rope_freq_factors" not in manifest["config"]
