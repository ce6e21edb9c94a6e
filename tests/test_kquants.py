"""GGUF K-quants (Q4_K, Q5_K, Q6_K) and Q5_0 carried exactly: model_prep/kquants.py against llama.cpp's own
dequantization (gguf.quants)."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from tiny_models import finish_gguf, gguf_tokenizer_fields, tiny_tokenizer

from model_prep import format as fmt
from model_prep import kquants, quant
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load

TYPES = ("Q4_K", "Q5_K", "Q6_K", "Q5_0")
SHAPES = ((1, 256), (3, 512), (16, 1024), (5, 2304))


def _same_bits(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Bit for bit; nothing is forgiven (not even -0.0 against +0.0: the same f32 operations in the same order give
    the same signs, and no such difference has shown up)."""
    assert ours.dtype == np.float32 and theirs.dtype == np.float32 and ours.shape == theirs.shape
    diff = ours.view(np.uint32) != theirs.view(np.uint32)
    assert not diff.any(), f"{diff.sum()} values differ, first at {np.argwhere(diff)[0]}"


@pytest.mark.parametrize("ggml_type", TYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_pack_dequantize_is_gguf_bit_for_bit(ggml_type: str, shape: tuple[int, int]) -> None:
    rows, cols = shape
    rng = np.random.default_rng(rows * cols + len(ggml_type))
    blocks = kquants.random_blocks(ggml_type, rows, cols, rng)
    raw = np.frombuffer(blocks, np.uint8).reshape(rows, -1)
    theirs = np.asarray(gguf.quants.dequantize(raw, gguf.GGMLQuantizationType[ggml_type]), np.float32)
    assert np.all(np.isfinite(theirs)) and 1e-3 < np.abs(theirs).mean() < 0.3  # weight-like values
    storage = kquants.STORAGE[ggml_type]
    planes = kquants.pack(ggml_type, blocks, rows, cols)
    # planes in the order and at the sizes format.plane_shapes gives
    assert [(name, planes[name].nbytes) for name in planes] == \
        [(p.name, p.nbytes) for p in fmt.plane_shapes(storage, rows, cols)] or storage == fmt.Q8
    assert all(p.dtype == np.uint32 for p in planes.values())
    _same_bits(kquants.dequantize(storage, planes, rows, cols), theirs)
    index = np.array([rows - 1, 0, rows // 2, rows - 1], np.intp)
    if storage == fmt.Q8:
        _same_bits(quant.dequantize_rows(storage, planes, rows, cols, index), theirs[index])
    else:
        _same_bits(kquants.dequantize_rows(storage, planes, rows, cols, index), theirs[index])
        # a row chunk is a slice of every plane
        part = kquants.slice_rows(storage, planes, cols, 1, rows)
        _same_bits(kquants.dequantize(storage, part, rows - 1, cols), theirs[1:])


def test_planes_follow_the_fixed_layout() -> None:
    """One hand-made Q4_K super-block: the codes and the six-bit scale/min bytes land where docs/FORMAT.md says."""
    values = np.arange(256) % 16
    block = np.zeros(144, np.uint8)
    block[0:2] = np.array([0.5], np.float16).view(np.uint8)  # d
    block[2:4] = np.array([0.25], np.float16).view(np.uint8)  # dmin
    # scales: sc[j] = j + 1 and m[j] = 40 + j, packed as ggml's get_scale_min_k4 reads them
    sc, mn = np.arange(1, 9, dtype=np.uint8), np.arange(40, 48, dtype=np.uint8)
    block[4:8] = (sc[:4] & 0x3F) | ((sc[4:] >> 4) << 6)
    block[8:12] = (mn[:4] & 0x3F) | ((mn[4:] >> 4) << 6)
    block[12:16] = (sc[4:] & 0x0F) | ((mn[4:] & 0x0F) << 4)
    qs = values.reshape(4, 2, 32)  # chunk k: values 64k..+31 in the low nibbles, 64k+32..+63 in the high
    block[16:] = (qs[:, 0] | (qs[:, 1] << 4)).reshape(-1)
    planes = kquants.pack("Q4_K", block.tobytes(), 1, 256)
    words = planes["qweight"]
    assert [(int(words[c // 8]) >> (4 * (c % 8))) & 15 for c in range(256)] == list(values)
    sup = planes["super"]
    assert sup[0] == (np.float16(0.5).view(np.uint16) | (np.uint32(np.float16(0.25).view(np.uint16)) << 16))
    assert list(sup[1:3].view(np.uint8)) == list(sc) and list(sup[3:5].view(np.uint8)) == list(mn)


def test_q5_0_codes_fit_q8() -> None:
    """Q5_0 codes q - 16 cover -16..15 and the scale is the block's d, unchanged."""
    rows, cols = 4, 256
    blocks = kquants.random_blocks("Q5_0", rows, cols, np.random.default_rng(1))
    planes = kquants.pack("Q5_0", blocks, rows, cols)
    codes = planes["qweight"].view(np.int8)
    assert codes.min() == -16 and codes.max() == 15
    d = np.frombuffer(blocks, np.uint8).reshape(-1, 22)[:, 0:2].copy().view(np.float16).reshape(-1)
    assert np.array_equal(planes["scales"].view(np.float16)[: d.size].view(np.uint16), d.view(np.uint16))


def test_gemma3_270m_tensors_bit_for_bit(gemma3_270m_gguf: Path) -> None:
    """Every Q4_K, Q6_K and Q5_0 tensor of a real llama.cpp Q4_K_M file packs and dequantizes to gguf's values."""
    reader = gguf.GGUFReader(gemma3_270m_gguf)
    seen: dict[str, int] = {}
    for t in reader.tensors:
        name = t.tensor_type.name
        if name not in kquants.STORAGE:
            continue
        cols, rows = int(t.shape[0]), int(t.shape[1])
        raw = np.asarray(t.data).reshape(rows, -1)
        theirs = np.asarray(gguf.quants.dequantize(raw, t.tensor_type), np.float32).reshape(rows, cols)
        _same_bits(kquants.dequantize(kquants.STORAGE[name], kquants.pack(name, raw, rows, cols), rows, cols), theirs)
        seen[name] = seen.get(name, 0) + 1
    assert seen == {"Q5_0": 81, "Q4_K": 27, "Q6_K": 9}


# --- a tiny llama GGUF of K-quants, prepared and run ----------------------------------------------------------------

HIDDEN, INTERMEDIATE, HEADS, KV_HEADS = 256, 512, 4, 2
# as llama.cpp's Q4_K_M mixes them, plus Q5_K, Q5_0 and Q8_0 (carried as before)
TYPES_BY_TENSOR = {"token_embd.weight": QT.Q4_K, "output.weight": QT.Q6_K,
                   "attn_q.weight": QT.Q4_K, "attn_k.weight": QT.Q5_0, "attn_v.weight": QT.Q6_K,
                   "attn_output.weight": QT.Q5_K, "ffn_gate.weight": QT.Q5_K, "ffn_up.weight": QT.Q5_0,
                   "ffn_down.weight": QT.Q6_K}


def _k_gguf(path: Path) -> Path:
    """A 2-layer llama GGUF whose matrices are random valid blocks of the types above (layer 1: Q4_K and Q8_0 for
    the ffn gate and up, so every carried type appears); norms f32 near 1."""
    rng = np.random.default_rng(5)
    tok = tiny_tokenizer()
    vocab = tok.get_vocab_size()
    kv = HIDDEN // HEADS * KV_HEADS
    shapes = {"token_embd.weight": (vocab, HIDDEN), "output.weight": (vocab, HIDDEN),
              "attn_q.weight": (HIDDEN, HIDDEN), "attn_k.weight": (kv, HIDDEN), "attn_v.weight": (kv, HIDDEN),
              "attn_output.weight": (HIDDEN, HIDDEN), "ffn_gate.weight": (INTERMEDIATE, HIDDEN),
              "ffn_up.weight": (INTERMEDIATE, HIDDEN), "ffn_down.weight": (HIDDEN, INTERMEDIATE)}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.add_context_length(256)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(INTERMEDIATE)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    gguf_tokenizer_fields(w, tok)

    def matrix(name: str, qtype: QT) -> None:
        rows, cols = shapes[name.removeprefix("blk.0.").removeprefix("blk.1.")]
        if qtype == QT.Q8_0:
            data = gguf.quants.quantize(rng.standard_normal((rows, cols)).astype(np.float32) * 0.05, qtype)
        else:
            data = np.frombuffer(kquants.random_blocks(qtype.name, rows, cols, rng), np.uint8).reshape(rows, -1)
        w.add_tensor(name, data, raw_dtype=qtype)

    def norm(name: str) -> None:
        w.add_tensor(name, (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32))

    matrix("token_embd.weight", TYPES_BY_TENSOR["token_embd.weight"])
    norm("output_norm.weight")
    matrix("output.weight", TYPES_BY_TENSOR["output.weight"])
    for layer in range(2):
        norm(f"blk.{layer}.attn_norm.weight")
        norm(f"blk.{layer}.ffn_norm.weight")
        for short, qtype in TYPES_BY_TENSOR.items():
            if short.startswith(("attn_", "ffn_")):
                if layer == 1 and short in ("ffn_gate.weight", "ffn_up.weight"):
                    qtype = QT.Q4_K if short == "ffn_gate.weight" else QT.Q8_0
                matrix(f"blk.{layer}.{short}", qtype)
    finish_gguf(w)
    return path


@pytest.fixture(scope="module")
def k_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _k_gguf(tmp_path_factory.mktemp("kgguf") / "tiny-k.gguf")


STORED = {"Q4_K": "q4k", "Q5_K": "q5k", "Q6_K": "q6k", "Q5_0": "q8", "Q8_0": "q8", "F32": "f32"}


@pytest.mark.parametrize("shard_bytes", [fmt.DEFAULT_SHARD_BYTES, 16 * 1024], ids=["whole", "chunked"])
def test_prepare_carries_k_quants(k_gguf: Path, tmp_path: Path, shard_bytes: int) -> None:
    """Default prepare stores K-quants as q4k/q5k/q6k and Q5_0 as q8, format version 5; every value is gguf's own,
    also when a tensor is split by rows into chunks (16 KiB shards)."""
    out = prepare(k_gguf, tmp_path / "pkg", Options(shard_bytes=shard_bytes))
    pkg = open_package(out)
    assert pkg.manifest["format_version"] == fmt.FORMAT_VERSION_K_QUANTS == 5
    report = json.loads((out / fmt.REPORT_FILE).read_text())
    reader = gguf.GGUFReader(k_gguf)
    chunked = 0
    for t in reader.tensors:
        entry, stats = pkg.manifest["tensors"][t.name], report["tensors"][t.name]
        assert entry["storage"] == STORED[t.tensor_type.name], t.name
        assert stats["carried"] and stats["source_type"] == t.tensor_type.name and stats["max_abs_error"] == 0
        want = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32).reshape(entry["shape"])
        _same_bits(pkg.tensor_f32(t.name), want)
        chunked += len(entry["chunks"]) > 1
    assert {e["storage"] for e in pkg.manifest["tensors"].values()} == {"q4k", "q5k", "q6k", "q8", "f32"}
    assert chunked > 0 if shard_bytes < fmt.DEFAULT_SHARD_BYTES else chunked == 0


def test_reference_logits_equal_the_dequantized_source(k_gguf: Path, tmp_path: Path) -> None:
    """The reference engine on the K package gives the logits of the same forward on gguf's dequantized values (an
    f32 package of the same file): equal bits, so teacher-forced top-1 agreement 1.00 over 40 tokens."""
    k_pkg = prepare(k_gguf, tmp_path / "k", Options(shard_bytes=16 * 1024))
    f32_pkg = prepare(k_gguf, tmp_path / "f32", Options(weights=fmt.F32))
    assert all(e["storage"] == "f32" for e in open_package(f32_pkg).manifest["tensors"].values())
    ids = [int(i) for i in np.random.default_rng(3).integers(0, 384, size=40)]
    got = load(k_pkg).logits(ids, 0, all_logits=True)
    want = load(f32_pkg).logits(ids, 0, all_logits=True)
    assert got.shape == (40, 384) and np.all(np.isfinite(want)) and want.std() > 0.1  # not a degenerate model
    np.testing.assert_array_equal(got, want)
    assert float(np.mean(got.argmax(axis=1) == want.argmax(axis=1))) == 1.0
    # and the decode path (one token at a time through the KV cache) agrees with the prefill
    engine = load(k_pkg)
    engine.logits(ids[:20], 0, all_logits=True)
    np.testing.assert_allclose(engine.logits(ids[20:21], 20), want[20], rtol=1e-4, atol=1e-4)


def test_requantize_option(k_gguf: Path, tmp_path: Path) -> None:
    """--requantize stores K-quants and Q5_0 re-quantized into --weights (q4), Q8_0 still carried; version 1."""
    out = prepare(k_gguf, tmp_path / "pkg", Options(requantize=True))
    pkg = open_package(out)
    assert pkg.manifest["format_version"] == 1 < fmt.FORMAT_VERSION_K_QUANTS
    assert pkg.manifest["source"]["options"]["requantize"] is True
    report = json.loads((out / fmt.REPORT_FILE).read_text())
    for t in gguf.GGUFReader(k_gguf).tensors:
        entry, stats = pkg.manifest["tensors"][t.name], report["tensors"][t.name]
        if t.tensor_type.name in kquants.STORAGE:
            assert entry["storage"] == "q4" and not stats["carried"] and stats["max_abs_error"] > 0, t.name
        else:
            assert entry["storage"] == STORED[t.tensor_type.name] and stats["carried"], t.name
    carried = prepare(k_gguf, tmp_path / "carried", Options())
    assert open_package(carried).manifest["source"]["options"] == Options().to_dict()  # no requantize key


def test_k_storage_needs_version_5(k_gguf: Path, tmp_path: Path) -> None:
    """A manifest that stores a tensor as q4k/q5k/q6k but says version 4 is refused, with a message naming it."""
    from model_prep.errors import PackageError

    out = prepare(k_gguf, tmp_path / "pkg", Options())
    mpath = out / fmt.MANIFEST_FILE
    manifest = json.loads(mpath.read_text())
    mpath.write_text(json.dumps(manifest | {"format_version": 4}))
    with pytest.raises(PackageError, match=r"token_embd.weight is stored as q4k \(version 5\); prepare it again"):
        open_package(out)
