"""The reference engine's API on the real default model: greedy answer, streaming, stops, turns, sampling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_prep.errors import InputError
from model_prep.reference import Engine, load
from model_prep.reference.sampling import Sampler

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def engine(smollm2_package: Path) -> Engine:
    return load(smollm2_package, context=512)


@pytest.mark.slow
def test_default_model_end_to_end(tmp_path: Path) -> None:
    """`fieldllm prepare` with no source, then a greedy one-shot chat on each engine (the native one by default, then
    the numpy reference): the exact known answer."""
    out = tmp_path / "pkg"
    cli = [sys.executable, "-m", "app.cli"]
    subprocess.run([*cli, "prepare", "--out", str(out)], check=True, capture_output=True)
    for engine in ([], ["--engine", "numpy"]):
        r = subprocess.run([*cli, "chat", "--package", str(out), "--prompt", "What is the capital of France?", *engine],
                           check=True, capture_output=True, text=True)
        assert r.stdout == "The capital of France is Paris.\n", engine


def test_generate_and_stream_agree(engine: Engine) -> None:
    done = engine.generate(FRANCE)
    assert done.text == "The capital of France is Paris."
    assert done.finish_reason == "stop"  # ended on <|im_end|>
    chunks = list(engine.stream(FRANCE))
    assert "".join(c.text for c in chunks) == done.text
    assert [t for c in chunks for t in c.token_ids] == done.token_ids
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage is not None
    assert last.usage.completion_tokens == len(done.token_ids)
    assert last.usage.prompt_tokens == len(engine.prompt_ids(FRANCE))
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_max_tokens_and_stop_strings(engine: Engine) -> None:
    short = engine.generate(FRANCE, max_tokens=3)
    assert short.finish_reason == "length" and len(short.token_ids) == 3
    assert "The capital of France is Paris.".startswith(short.text)
    cut = engine.generate(FRANCE, stop=["Paris"])
    assert cut.text == "The capital of France is " and cut.finish_reason == "stop"
    streamed = "".join(c.text for c in engine.stream(FRANCE, stop=["is Par"]))
    assert streamed == "The capital of France " and "is" not in streamed.split("France")[1]


def test_next_turn_reuses_the_cache(engine: Engine, smollm2_package: Path) -> None:
    first = engine.generate(FRANCE)
    turn2 = [*FRANCE, {"role": "assistant", "content": first.text},
             {"role": "user", "content": "And of Italy?"}]
    ran: list[tuple[int, int]] = []
    real = engine.logits

    def spy(ids, pos=0, all_logits=False):  # type: ignore[no-untyped-def]
        ran.append((pos, len(ids)))
        return real(ids, pos, all_logits)

    engine.logits = spy  # type: ignore[method-assign]
    try:
        again = engine.generate(turn2, max_tokens=12)
    finally:
        del engine.logits
    prompt_len = len(engine.prompt_ids(turn2))
    assert ran[0][0] > 0 and ran[0][0] + ran[0][1] == prompt_len  # only the new part of the prompt ran
    fresh = load(smollm2_package, context=512).generate(turn2, max_tokens=12)
    assert again.token_ids == fresh.token_ids


def test_seeded_sampling(engine: Engine) -> None:
    a = engine.generate(FRANCE, temperature=0.9, top_p=0.95, seed=7, max_tokens=16)
    b = engine.generate(FRANCE, temperature=0.9, top_p=0.95, seed=7, max_tokens=16)
    assert a.token_ids == b.token_ids
    others = {tuple(engine.generate(FRANCE, temperature=1.5, seed=s, max_tokens=8).token_ids) for s in range(4)}
    assert len(others) > 1
    tiny_p = engine.generate(FRANCE, temperature=1.0, top_p=1e-6, seed=3)
    assert tiny_p.text == "The capital of France is Paris."  # top-p that keeps one token is greedy


def test_top_p_keeps_the_nucleus() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], np.float32))
    s = Sampler(temperature=1.0, top_p=0.8, seed=0)
    draws = np.bincount([s(logits) for _ in range(4000)], minlength=4) / 4000
    assert draws[2] == 0 and draws[3] == 0  # outside the 0.8 nucleus
    assert abs(draws[0] - 0.625) < 0.03 and abs(draws[1] - 0.375) < 0.03  # renormalized 0.5/0.8, 0.3/0.8
    assert Sampler()(np.array([1, 3, 3, 2], np.float32)) == 1  # greedy ties -> lowest id


def test_bad_requests(engine: Engine) -> None:
    with pytest.raises(InputError, match="context holds 512"):
        engine.generate([{"role": "user", "content": "pump " * 600}])
    with pytest.raises(InputError, match="max_tokens"):
        engine.generate(FRANCE, max_tokens=0)
    with pytest.raises(InputError, match="role"):
        engine.generate([{"role": "robot", "content": "hi"}])
    with pytest.raises(InputError, match="top_p"):
        engine.generate(FRANCE, top_p=0)
