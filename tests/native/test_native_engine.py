"""The native CPU engine (app/native: cpu_engine.c compiled for this machine) against the numpy reference engine.

Logits of tiny random models within 1e-3 (f32 in small shards, q8, q4, q4 with q8 v, a GGUF Q4_1 source with the
interleaved RoPE layout, Llama 3 RoPE scaling, Qwen3's per-head q/k norm at q4 and from a GGUF Q8_0, Phi-3's longrope
at q4 and from a GGUF Q8_0) for a prefill,
a decode step and a prompt of several passes; greedy
token ids of the default model equal to the reference's for three chats x 24 tokens; a corrupted shard, a closed
model and a missing compiler refused with one line. The library is built first (a C compiler is needed: the tests
fail without one, they never skip).
"""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import numpy as np
import pytest
from chats import CHATS, STEPS
from gguf import GGMLQuantizationType as QT
from tiny_models import hf_to_gguf, make_hf

from app.native import build
from app.native.model import NativeEngineError, NativeModel, default_threads
from app.native.model import load as load_native
from model_prep.errors import PackageError
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load
from model_prep.reference.sampling import Sampler

TOLERANCE = 1e-3
TEXT = "The pump bearing runs hot at 78 degrees; what now?"
LONG = "Generator 2 tripped on overcurrent. " * 6
LLAMA3 = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 16}


@pytest.fixture(scope="module")
def tiny_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("native-tiny")
    hf = {arch: make_hf(out / f"hf-{arch}", arch, seed=3) for arch in ("llama", "qwen2", "qwen3")}
    hf["phi3"] = make_hf(out / "hf-phi3", "phi3", seed=3, original=128)  # context 128: the long prompts fit
    llama3 = make_hf(out / "hf-llama3", "llama", seed=5, init_std=0.05, rope_parameters=LLAMA3)
    sources: dict[str, tuple[Path, Options]] = {
        "llama-f32-chunked": (hf["llama"], Options(weights="f32", shard_bytes=64 * 1024)),
        "qwen2-q8": (hf["qwen2"], Options(weights="q8")),
        "llama-q4": (hf["llama"], Options(weights="q4")),
        "qwen2-q4+v8": (hf["qwen2"], Options(weights="q4", keep_8bit=(r"attn_v\.",))),
        "llama-gguf-q4_1": (hf_to_gguf(hf["llama"], out / "llama-q4_1.gguf", QT.Q4_1), Options()),
        "llama3-rope-q4": (llama3, Options(weights="q4")),
        "qwen3-q4": (hf["qwen3"], Options(weights="q4")),  # per-head q/k norm, head_dim 32 on hidden 64
        "qwen3-gguf-q8_0": (hf_to_gguf(hf["qwen3"], out / "qwen3-q8_0.gguf", QT.Q8_0), Options()),
        # fused qkv / gate_up split at prepare; longrope short factors + attention factor; context capped at 128
        "phi3-q4": (hf["phi3"], Options(weights="q4")),
        "phi3-gguf-q8_0": (hf_to_gguf(hf["phi3"], out / "phi3-q8_0.gguf", QT.Q8_0), Options()),
    }
    return {name: prepare(src, out / name, opts) for name, (src, opts) in sources.items()}


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


@pytest.mark.parametrize("name", ["llama-f32-chunked", "qwen2-q8", "llama-q4", "qwen2-q4+v8", "llama-gguf-q4_1",
                                  "llama3-rope-q4", "qwen3-q4", "qwen3-gguf-q8_0", "phi3-q4", "phi3-gguf-q8_0"])
def test_tiny_logits_within_1e_3_of_the_reference(tiny_packages: dict[str, Path], name: str) -> None:
    pkg = tiny_packages[name]
    ref = load(pkg, context=256)
    # 16 tokens per pass: the long prompt takes several passes, ending on partial 4-token blocks
    native = NativeModel(open_package(pkg), context=256, pass_tokens=16)
    prompt = ref.tokenizer.encode(TEXT, add_special_tokens=False).ids
    long = ref.tokenizer.encode(LONG, add_special_tokens=False).ids
    assert len(long) > 32, "the long prompt must take several passes"
    first = ref.logits(prompt, 0)
    token = int(first.argmax())
    # past the llama3 package's original context of 16, where its scaled frequencies matter; phi3's whole context (128)
    far = (long * 8)[:min(220, ref.config.context_length)]
    steps = [(prompt, 0, first), ([token], len(prompt), ref.logits([token], len(prompt))),
             (long, 0, ref.logits(long, 0)), (far, 0, ref.logits(far, 0))]
    for k, (ids, pos, expected) in enumerate(steps):
        got = native.forward(ids, pos)
        assert got.shape == expected.shape and got.dtype == np.float32
        err = _max_err(got, expected)
        assert err <= TOLERANCE, f"{name} step {k}: max abs error {err:.2e}"
        assert np.abs(expected).max() > 10 * TOLERANCE  # the comparison is not between near-zero vectors
    native.close()


@pytest.mark.parametrize("name", ["llama-q4", "qwen2-q4+v8", "qwen3-q4"])
def test_threads_give_the_same_bits(tiny_packages: dict[str, Path], name: str) -> None:
    """Each part of a job computes whole rows (or heads), whichever thread claims it: 1 to 4 threads, prompts and decode
    steps (decode on all, one, or some of the threads: the rest stay idle), same logits; prompts again after decode
    steps, so the thread count changes back and forth."""
    pkg = open_package(tiny_packages[name])
    one = NativeModel(pkg, context=128, pass_tokens=16)
    many = [NativeModel(pkg, context=128, pass_tokens=16, threads=t, decode_threads=d)
            for t, d in ((2, 1), (3, 3), (4, 2))]
    ids = list(range(3, 60))
    steps = [(ids, 0), ([7], len(ids)), ([9], len(ids) + 1), (ids[:20], 0), ([11], 20), (ids[:30], 0)]
    for ids_k, pos in steps:
        expected = one.forward(ids_k, pos)
        for m in many:
            np.testing.assert_array_equal(m.forward(ids_k, pos), expected)
    for m in [one, *many]:
        m.close()  # stops the workers: close returns only once they have


def test_the_128_bit_kernels_too(tiny_packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """On x86-64 with AVX2 the library uses wide.h's row products; -DFE_NO_WIDE builds the 128-bit ones of the wasm
    build, which CPUs without AVX2 (and arm64) run: both within 1e-3 of the reference."""
    wide = build.library()
    monkeypatch.setenv(build.CFLAGS_ENV, "-DFE_NO_WIDE")
    build.library.cache_clear()
    try:
        assert build.library() != wide
        for name in ("llama-q4", "qwen2-q8"):
            ref = load(tiny_packages[name], context=64)
            ids = ref.tokenizer.encode(TEXT, add_special_tokens=False).ids
            err = _max_err(NativeModel(open_package(tiny_packages[name]), context=64).forward(ids, 0),
                           ref.logits(ids, 0))
            assert err <= TOLERANCE, f"{name}: max abs error {err:.2e}"
    finally:
        monkeypatch.delenv(build.CFLAGS_ENV)
        build.library.cache_clear()


def test_default_threads_leave_half_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(2)))
    assert default_threads() == (1, 1)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(32)))
    assert default_threads() == (8, 4)
    assert default_threads(3) == (3, 1) and default_threads(2, 5) == (2, 2) and default_threads(0, 3) == (8, 3)


def test_two_models_in_one_process_keep_their_own_state(tiny_packages: dict[str, Path]) -> None:
    a = NativeModel(open_package(tiny_packages["llama-q4"]), context=64)
    b = NativeModel(open_package(tiny_packages["qwen2-q8"]), context=64)
    alone = NativeModel(open_package(tiny_packages["llama-q4"]), context=64).forward([5, 6, 7], 0)
    b.forward([1, 2, 3, 4], 0)
    np.testing.assert_array_equal(a.forward([5, 6, 7], 0), alone)
    a.close()
    b.close()


def test_refusals_are_one_line(tiny_packages: dict[str, Path], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = NativeModel(open_package(tiny_packages["llama-q4"]), context=32)
    with pytest.raises(ValueError, match="exceed the context of 32"):
        model.forward([1, 2], 31)
    with pytest.raises(ValueError, match="token ids must be in"):
        model.forward([10**6], 0)
    model.close()
    with pytest.raises(NativeEngineError, match="was closed"):
        model.forward([1], 0)

    bad = tmp_path / "bad"
    shutil.copytree(tiny_packages["llama-q4"], bad)
    shard = next(bad.glob("weights-*.bin"))
    data = bytearray(shard.read_bytes())
    data[100] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="does not match its sha256"):
        load_native(bad)

    build.library.cache_clear()
    monkeypatch.setenv("CC", "no-such-compiler-here")
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "cache"))
    try:
        with pytest.raises(build.NativeBuildError) as e:
            build.library()
        assert "\n" not in str(e.value) and "--engine numpy" in str(e.value)
    finally:
        build.library.cache_clear()


def test_the_library_is_rebuilt_for_edited_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cached build is keyed by the sources: an edited kernel never loads a stale library."""
    src = tmp_path / "cpu"
    shutil.copytree(build.SOURCE_DIR, src, ignore=shutil.ignore_patterns("*.wasm", "*.js"))
    monkeypatch.setattr(build, "SOURCE_DIR", src)
    monkeypatch.setenv(build.CACHE_ENV, str(tmp_path / "cache"))
    build.library.cache_clear()
    try:
        first = build.library()
        with open(src / "cpu_engine.c", "a") as f:
            f.write("\nEXPORT(fe_test_marker) int fe_test_marker(void) { return 42; }\n")
        build.library.cache_clear()
        second = build.library()
        assert first != second and first.is_file()
        assert ctypes.CDLL(str(second)).fe_test_marker() == 42
        assert not list((tmp_path / "cache").glob("*.tmp"))  # nothing half-written left behind
    finally:
        build.library.cache_clear()


@pytest.mark.slow
def test_smollm2_greedy_ids_equal_the_reference(smollm2_package: Path) -> None:
    ref = load(smollm2_package, context=512)
    native = load_native(smollm2_package, context=512)
    for k, messages in enumerate(CHATS):
        prompt = ref.prompt_ids(messages)
        assert native.prompt_ids(messages) == prompt
        ref.reset_cache()
        native.reset_cache()
        expected = list(ref.generate_ids(prompt, STEPS, Sampler()))
        got = list(native.generate_ids(prompt, STEPS, Sampler()))
        assert got == expected, f"chat {k}"
    # the pump and triage answers are long: 24 tokens each, compared in full
    assert [len(list(ref.generate_ids(ref.prompt_ids(c), STEPS, Sampler()))) for c in CHATS[:2]] == [STEPS, STEPS]
