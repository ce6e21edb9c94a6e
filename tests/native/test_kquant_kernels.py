"""The CPU engine's K-quant matmul kernels (q4k / q5k / q6k, cpu_engine.c row_k45 / row_q6k and wide.h's AVX2
fe_wide_k45 / fe_wide_q6k) on their own, in the native build with and without -DFE_NO_WIDE: ``fe_matmul`` of random
GGUF blocks (model_prep.kquants.random_blocks, packed by kquants.pack) against numpy's product with
``kquants.dequantize``'s weights, for 1 token (decode), 3 and 6 (the 4-token blocks of a prompt and their remainder),
the tensor split into two row chunks and the rows cut into 3 parts as threads would cut them; then a whole tiny llama
of mixed K-quants (tests/test_kquants.py's GGUF) against the reference engine: logits within 1e-3 and the same greedy
ids on 1 and 3 threads.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_kquants import _k_gguf

from app.native import build
from app.native.model import STORAGE, NativeModel, _private_library
from model_prep import kquants
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load

SLOT = 3 + 9  # layer 0's ffn_gate (any slot: fe_matmul reads only the tensor)
HIDDEN, INTER = 512, 768  # cols up to the widest input of the config


def _put(lib: ctypes.CDLL, arr: np.ndarray) -> int:
    at = lib.fe_alloc(arr.nbytes)
    assert at
    ctypes.memmove(at, arr.ctypes.data, arr.nbytes)
    return int(at)


@pytest.fixture(scope="module", params=["default", "-DFE_NO_WIDE"])
def lib(request: pytest.FixtureRequest) -> Iterator[ctypes.CDLL]:
    """The library for this machine (on x86-64 with AVX2: wide.h's 8-lane kernels), and the 128-bit kernels that the
    wasm build and other CPUs run."""
    mp = pytest.MonkeyPatch()
    if request.param != "default":
        mp.setenv(build.CFLAGS_ENV, request.param)
    build.library.cache_clear()
    try:
        lib = _private_library()
    finally:
        mp.undo()
        build.library.cache_clear()
    assert lib.fe_init(16, HIDDEN, INTER, 1, 2, 1, 256, 1e-6, 16.0, 0, 0, 0, 8, 8) == 0
    yield lib
    lib.fe_release()


@pytest.mark.parametrize("ggml_type", ["Q4_K", "Q5_K", "Q6_K"])
@pytest.mark.parametrize("cols", [HIDDEN, INTER])
def test_kquant_matmul_matches_numpy(lib: ctypes.CDLL, ggml_type: str, cols: int) -> None:
    rows, split = 37, 20
    rng = np.random.default_rng(cols + len(ggml_type) * 7 + ord(ggml_type[1]))
    storage = kquants.STORAGE[ggml_type]
    planes = kquants.pack(ggml_type, kquants.random_blocks(ggml_type, rows, cols, rng), rows, cols)
    weights = kquants.dequantize(storage, planes, rows, cols).astype(np.float64)
    assert lib.fe_tensor(SLOT, STORAGE[storage], rows, cols, 2) == 0
    for i, (a, b) in enumerate(((0, split), (split, rows))):
        chunk = kquants.slice_rows(storage, planes, cols, a, b)
        part = {k: _put(lib, np.ascontiguousarray(v)) for k, v in chunk.items()}
        assert lib.fe_chunk(SLOT, i, a, b, part["qweight"], part["super"], part.get("qhigh")) == 0
    for T in (1, 3, 6):
        x = rng.standard_normal((T, cols)).astype(np.float32)
        xa = _put(lib, x)
        ya = lib.fe_alloc(T * rows * 4)
        assert lib.fe_matmul(SLOT, T, xa, ya) == 0
        got = np.ctypeslib.as_array(ctypes.cast(ya, ctypes.POINTER(ctypes.c_float)), (T, rows)).astype(np.float64)
        expected = x.astype(np.float64) @ weights.T
        bound = np.abs(x.astype(np.float64)) @ np.abs(weights).T  # the sum of the terms' magnitudes
        err = np.abs(got - expected) / bound
        assert err.max() <= 1e-5, f"{ggml_type} cols {cols} T {T}: relative error {err.max():.2e}"
        assert np.abs(expected).max() > 1e-2  # not a comparison of near-zero outputs


def test_kquant_tensors_need_whole_super_blocks(lib: ctypes.CDLL) -> None:
    assert lib.fe_tensor(SLOT, STORAGE["q4k"], 4, 288, 1) == 4  # 288 % 256: refused (FE_ERR_ARGS)
    assert lib.fe_tensor(SLOT, STORAGE["q6k"], 4, 256, 1) == 0
    assert lib.fe_chunk(SLOT, 0, 0, 4, 64, 64, None) == 4  # q6k without its qhigh plane


# --- a tiny llama GGUF of K-quants (tests/test_kquants.py: Q4_K, Q5_K, Q6_K, Q5_0, Q8_0 mixed as Q4_K_M does) ------

@pytest.fixture(scope="module")
def k_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("native-k")
    # 16 KiB shards: tensors split into row chunks, each plane sliced
    return prepare(_k_gguf(out / "tiny-k.gguf"), out / "pkg", Options(shard_bytes=16 * 1024))


@pytest.mark.parametrize("threads", [1, 3])
def test_tiny_kquant_llama_logits_and_greedy_ids(k_package: Path, threads: int) -> None:
    storages = {e["storage"] for e in open_package(k_package).manifest["tensors"].values()}
    assert storages == {"q4k", "q5k", "q6k", "q8", "f32"}
    ref = load(k_package, context=64)
    native = NativeModel(open_package(k_package), context=64, pass_tokens=16, threads=threads)
    ids = [int(i) for i in np.random.default_rng(3).integers(0, 384, size=40)]
    # 40 tokens in passes of 16 (4-token blocks and a remainder), then greedy decode steps, each compared
    want = ref.logits(ids, 0)
    got = native.forward(ids, 0)
    pos, ref_ids, native_ids = len(ids), [], []
    for k in range(8):
        err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max())
        assert err <= 1e-3, f"{threads} threads, step {k}: max abs error {err:.2e}"
        assert np.abs(want).max() > 1e-2
        ref_ids.append(int(want.argmax()))
        native_ids.append(int(got.argmax()))
        want, got = ref.logits([ref_ids[-1]], pos), native.forward([ref_ids[-1]], pos)
        pos += 1
    assert native_ids == ref_ids
    native.close()
