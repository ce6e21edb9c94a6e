"""GGUF reading: carried types stay bit-exact, every supported type is read and re-quantized with a reported error."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from tiny_models import finish_gguf, tiny_tokenizer, write_gguf

from model_prep import format as fmt
from model_prep.gguf_source import SUPPORTED_TYPES
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare

CARRIED = {QT.Q4_0: "q4", QT.Q4_1: "q4", QT.Q8_0: "q8", QT.Q5_0: "q8", QT.Q4_K: "q4k", QT.Q5_K: "q5k",
           QT.Q6_K: "q6k"}


def test_smollm2_carried_bit_exact(smollm2_gguf: Path, smollm2_package: Path) -> None:
    """Every Q4_0/Q4_1/Q8_0 tensor of the real model dequantizes from our package to exactly gguf's values."""
    pkg = open_package(smollm2_package)
    reader = gguf.GGUFReader(smollm2_gguf)
    checked = 0
    for t in reader.tensors:
        qtype = QT(t.tensor_type)
        entry = pkg.manifest["tensors"][t.name]
        want = gguf.quants.dequantize(t.data, qtype).reshape(entry["shape"])
        got = pkg.tensor_f32(t.name)
        if qtype in CARRIED:
            assert entry["storage"] == CARRIED[qtype]
            # same bits (Q4_0 may differ in the sign of a zero: see docs/FORMAT.md; SmolLM2 has no Q4_0)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), t.name
            checked += 1
        else:
            assert entry["storage"] == "f32" and np.array_equal(got, want), t.name
    assert checked == 211  # 210 Q4_1 + 1 Q8_0


def _synthetic(tmp_path: Path, qtype: QT, hidden: int = 256) -> tuple[Path, dict[str, np.ndarray]]:
    """A 1-layer llama GGUF whose 2-D tensors are stored as `qtype`; returns gguf's own dequantized values."""
    rng = np.random.default_rng(int(qtype))
    tok = tiny_tokenizer()
    vocab = tok.get_vocab_size()
    cfg = {"layers": 1, "hidden": hidden, "intermediate": 512, "heads": 4, "kv_heads": 2}
    kv = hidden // 2
    shapes = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,), "output.weight": (vocab, hidden),
              "blk.0.attn_norm.weight": (hidden,), "blk.0.attn_q.weight": (hidden, hidden),
              "blk.0.attn_k.weight": (kv, hidden), "blk.0.attn_v.weight": (kv, hidden),
              "blk.0.attn_output.weight": (hidden, hidden), "blk.0.ffn_norm.weight": (hidden,),
              "blk.0.ffn_gate.weight": (512, hidden), "blk.0.ffn_up.weight": (512, hidden),
              "blk.0.ffn_down.weight": (hidden, 512)}
    tensors = {n: (rng.standard_normal(s).astype(np.float32) * 0.05, qtype) for n, s in shapes.items()}
    path = write_gguf(tmp_path / f"{qtype.name}.gguf", "llama", cfg, tensors, tok)
    reader = gguf.GGUFReader(path)
    values = {t.name: gguf.quants.dequantize(t.data, QT(t.tensor_type)).reshape(shapes[t.name])
              for t in reader.tensors}
    return path, values


@pytest.mark.parametrize("qtype", SUPPORTED_TYPES, ids=lambda q: q.name)
def test_every_supported_type(tmp_path: Path, qtype: QT) -> None:
    path, source = _synthetic(tmp_path, qtype)
    out = prepare(path, tmp_path / "pkg", Options())
    pkg = open_package(out)
    report = json.loads((out / fmt.REPORT_FILE).read_text())
    for name, want in source.items():
        entry, stats = pkg.manifest["tensors"][name], report["tensors"][name]
        assert stats["source_type"] == (qtype.name if want.ndim == 2 else "F32")
        got = pkg.tensor_f32(name)
        err = np.abs(got - want)
        if want.ndim == 1 or qtype in CARRIED:
            assert np.array_equal(got, want), name
            assert stats["carried"] and stats["max_abs_error"] == 0
            assert want.ndim == 1 or entry["storage"] == CARRIED[qtype]
        else:
            assert entry["storage"] == "q4" and not stats["carried"]
            # the report says by how much: its figures are the ones we measure independently here
            assert stats["max_abs_error"] == pytest.approx(float(err.max()), rel=1e-6)
            assert stats["mean_abs_error"] == pytest.approx(float(err.mean()), rel=1e-4)
            # the quantizer keeps, per group, the better of min-max and a least-squares refit: never worse (in
            # squared error) than plain min-max codes with f16 scale and min, which we compute here independently
            g = want.reshape(want.shape[0], -1, 32).astype(np.float32)
            lo, hi = g.min(2), g.max(2)
            s16 = ((hi - lo) / 15).astype(np.float16).astype(np.float32)[..., None]
            m16 = lo.astype(np.float16).astype(np.float32)[..., None]
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.clip(np.nan_to_num(np.rint((g - m16) / s16)), 0, 15)
            minmax_sq = ((q * s16 + m16 - g) ** 2).sum(2)
            ours_sq = (err.reshape(g.shape) ** 2).sum(2)
            assert (ours_sq <= minmax_sq * (1 + 1e-5) + 1e-12).all(), name


def test_q4_0_carried_bits(tmp_path: Path) -> None:
    """Q4_0 carries as q4 with min = -8*scale: equal values (only the sign of some zeros can differ)."""
    path, source = _synthetic(tmp_path, QT.Q4_0)
    pkg = open_package(prepare(path, tmp_path / "pkg", Options()))
    for name, want in source.items():
        got = pkg.tensor_f32(name)
        assert np.array_equal(got, want)
        differ = got.view(np.uint32) != want.view(np.uint32)
        assert (got[differ] == 0).all()


def test_keep_8bit_and_weights_option(tmp_path: Path) -> None:
    path, source = _synthetic(tmp_path, QT.F16)
    pkg = open_package(prepare(path, tmp_path / "a", Options(keep_8bit=("ffn_down", "^output"))))
    storage = {n: e["storage"] for n, e in pkg.manifest["tensors"].items()}
    assert storage["blk.0.ffn_down.weight"] == "q8" and storage["output.weight"] == "q8"
    assert storage["blk.0.ffn_up.weight"] == "q4" and storage["token_embd.weight"] == "q4"
    err8 = np.abs(pkg.tensor_f32("output.weight") - source["output.weight"]).max()
    err4 = np.abs(pkg.tensor_f32("token_embd.weight") - source["token_embd.weight"]).max()
    assert err8 < err4 / 5
    full = open_package(prepare(path, tmp_path / "b", Options(weights="f32")))
    assert all(e["storage"] == "f32" for e in full.manifest["tensors"].values())
    assert np.array_equal(full.tensor_f32("blk.0.attn_q.weight"), source["blk.0.attn_q.weight"])


def test_our_parser_reads_what_gguf_reads(smollm2_gguf: Path) -> None:
    """gguf_file.py (ours, fast) gives every metadata value and tensor array that gguf.GGUFReader gives."""
    from model_prep.gguf_file import read_gguf_file

    ours, theirs = read_gguf_file(smollm2_gguf), gguf.GGUFReader(smollm2_gguf)
    assert list(ours.metadata) == list(theirs.fields)
    for key, field in theirs.fields.items():
        want = field.contents()
        assert ours.metadata[key] == want and type(ours.metadata[key]) is type(want), key
    assert (ours.data_start, ours.alignment) == (theirs.data_offset, theirs.alignment)
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        assert (a.name, a.ggml_type, a.data_offset, a.n_bytes) == (b.name, b.tensor_type, b.data_offset, b.n_bytes)
        assert a.dims == tuple(b.shape.tolist())
        assert a.data.dtype == b.data.dtype and a.data.shape == b.data.shape, a.name
        assert np.array_equal(a.data, b.data), a.name


def test_our_parser_on_every_value_type(tmp_path: Path) -> None:
    """Scalars and arrays of every GGUF value type, as gguf writes them, read back as gguf reads them."""
    from gguf import GGUFValueType as GVT

    from model_prep.gguf_file import read_gguf_file

    w = gguf.GGUFWriter(str(tmp_path / "kv.gguf"), "llama")
    scalars = {GVT.UINT8: 200, GVT.INT8: -100, GVT.UINT16: 60000, GVT.INT16: -30000, GVT.UINT32: 4_000_000_000,
               GVT.INT32: -2_000_000_000, GVT.FLOAT32: 0.1, GVT.UINT64: 2**63 + 5, GVT.INT64: -(2**62),
               GVT.FLOAT64: 0.1, GVT.BOOL: True, GVT.STRING: "pump \u00e9\u2103 \U0001f527"}
    for vtype, value in scalars.items():
        w.add_key_value(f"test.{vtype.name.lower()}", value, vtype)
        w.add_key_value(f"test.{vtype.name.lower()}_array", [value, value], GVT.ARRAY, vtype)
    w.add_tensor("t.f16", np.arange(64, dtype=np.float16).reshape(2, 32))
    w.add_tensor("t.q8", np.zeros((2, 34), np.uint8), raw_dtype=QT.Q8_0)
    finish_gguf(w)
    ours, theirs = read_gguf_file(tmp_path / "kv.gguf"), gguf.GGUFReader(tmp_path / "kv.gguf")
    for key, field in theirs.fields.items():
        want = field.contents()
        assert ours.metadata[key] == want, key
        items = want if isinstance(want, list) else [want]
        assert [type(v) for v in (ours.metadata[key] if isinstance(want, list) else [ours.metadata[key]])] == [
            type(v) for v in items], key
    for a, b in zip(ours.tensors, theirs.tensors, strict=True):
        assert a.data.dtype == b.data.dtype and np.array_equal(a.data, b.data)
