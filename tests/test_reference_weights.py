"""The reference engine keeps weights as the package stores them (q4 / q8 / f32 planes) and dequantizes a matrix when
it is used, through an LRU of dequantized matrices bounded in bytes (issue 12): the logits are bit-identical to an
engine on all-f32 weights (Package.tensor_f32, what the engine held before), whatever the cache budget; the engine
holds about the package's bytes, not 4x; the embedding lookup unpacks only the rows asked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_prep import format as fmt
from model_prep import quant
from model_prep.package import open_package
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load
from model_prep.reference.engine import Engine, NumpyModel
from model_prep.reference.forward import Weights
from model_prep.reference.weights import DenseMatrix, PackageMatrices, WeightCache

PROMPT = [{"role": "user", "content": "The pump bearing runs hot at 78 degrees; what now?"}]


@pytest.fixture(scope="module", params=["q4", "q8", "f32", "q4-chunked"])
def package(request: pytest.FixtureRequest, tiny_hf, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny qwen2 packages (tied embedding, q/k/v biases); "q4-chunked": 16 KiB shards, so that the embedding and
    other matrices are split into several chunks."""
    weights, _, chunked = request.param.partition("-")
    opts = Options(weights=weights, shard_bytes=16 * 1024) if chunked else Options(weights=weights)
    return prepare(tiny_hf("qwen2"), tmp_path_factory.mktemp("pkg") / request.param, opts)


def _all_f32_engine(path: Path) -> Engine:
    """The engine as it was: every matrix dequantized once into an f32 array held for good."""
    pkg = open_package(path)
    weights = Weights.from_tensors(pkg.config, pkg.tensor_f32, lambda n: DenseMatrix(pkg.tensor_f32(n)), 0)
    ref = load(path)
    return Engine(pkg.config, NumpyModel(pkg.config, weights, ref.context), ref.tokenizer, pkg.chat_template,
                  pkg.generation)


def _run(engine: Engine) -> np.ndarray:
    """Prefill logits of every position, then 6 decode steps through the KV cache."""
    ids = engine.prompt_ids(PROMPT)
    prefill = engine.logits(ids, 0, all_logits=True)
    steps = [engine.logits([int(t)], len(ids) + i) for i, t in enumerate(prefill.argmax(axis=1)[:6])]
    return np.concatenate([prefill, np.stack(steps)])


@pytest.mark.parametrize("budget", [None, 0, 200_000])  # default (everything fits), nothing kept, a few matrices
def test_logits_bit_identical_to_all_f32(package: Path, budget: int | None) -> None:
    want = _run(_all_f32_engine(package))
    engine = load(package) if budget is None else load(package, weight_cache_bytes=budget)
    got = _run(engine)
    assert got.dtype == want.dtype == np.float32
    assert got.tobytes() == want.tobytes()
    cache = engine.model.weights.cache  # type: ignore[attr-defined]
    assert cache.bytes <= cache.budget
    if budget is None and package.name != "f32":  # the default budget holds every matrix of a tiny model
        assert cache.bytes > 0
    text = engine.generate(PROMPT, max_tokens=12).token_ids
    assert text == _all_f32_engine(package).generate(PROMPT, max_tokens=12).token_ids


def test_resident_weights_are_the_package_bytes(package: Path) -> None:
    pkg = open_package(package)
    shard_bytes = sum(f["size"] for f in pkg.manifest["files"] if f["path"].startswith("weights-"))
    f32_bytes = sum(4 * int(np.prod(e["shape"])) for e in pkg.manifest["tensors"].values())
    engine = load(package, weight_cache_bytes=0)
    weights = engine.model.weights  # type: ignore[attr-defined]
    _run(engine)
    held = weights.stored_bytes()  # every array the engine holds: planes (views of the shards) and f32 vectors
    assert held <= 1.02 * shard_bytes, (held, shard_bytes)
    assert weights.cache.bytes == 0
    if package.name.startswith("q4"):
        assert held < 0.25 * f32_bytes, (held, f32_bytes)  # 4.5 bits a weight, norms and biases in f32
    if package.name == "q8":
        assert held < 0.35 * f32_bytes, (held, f32_bytes)


def test_cache_is_lru_by_bytes() -> None:
    ms = [DenseMatrix(np.zeros((4, 8), np.float32)) for _ in range(3)]

    class Counted(DenseMatrix):
        calls = 0

        def held(self) -> None:
            return None

        def f32(self) -> np.ndarray:
            Counted.calls += 1
            return self.values.copy()

    a, b, c = (Counted(m.values) for m in ms)  # 128 bytes of f32 each
    cache = WeightCache(budget=256)
    cache.f32(a), cache.f32(b), cache.f32(a)  # a is now the most recent
    cache.f32(c)  # evicts b, the least recently used
    assert Counted.calls == 3 and cache.bytes == 256
    cache.f32(a), cache.f32(c)
    assert Counted.calls == 3
    cache.f32(b)
    assert Counted.calls == 4
    big = Counted(np.zeros((16, 8), np.float32))  # 512 bytes: more than the budget, never kept
    cache.f32(big), cache.f32(big)
    assert Counted.calls == 6 and cache.bytes <= 256


@pytest.mark.parametrize("storage", [fmt.Q4, fmt.Q8, fmt.F32])
def test_embedding_rows_without_the_whole_matrix(package: Path, storage: str, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((50, 64)).astype(np.float32)
    planes = quant.quantize(storage, values)
    index = np.array([7, 0, 49, 7, 13])
    full = quant.dequantize(storage, planes, 50, 64)
    assert quant.dequantize_rows(storage, planes, 50, 64, index).tobytes() == full[index].tobytes()
    # the engine's lookup on a package's (maybe chunked) embedding: the same rows, and no whole dequantization
    matrix = PackageMatrices(open_package(package)).matrix("token_embd.weight")
    whole = matrix.f32()
    assert len(matrix.chunks) > 1 if package.name.endswith("chunked") else len(matrix.chunks) == 1
    ids = np.array([3, 300, 3, 1, whole.shape[0] - 1])
    calls: list[str] = []
    monkeypatch.setattr(quant, "dequantize", lambda *a, **k: calls.append("whole"))
    assert WeightCache().rows(matrix, ids).tobytes() == whole[ids].tobytes()
    assert not calls
    with pytest.raises(IndexError):
        matrix.rows(np.array([whole.shape[0]]))
