"""model_prep.reference.forward.kv_f16 (the WebGPU engine's f16 KV cache rounding, issue 10) and the reference
engine's kv_f16 option. tests/kernels/test_kv_f16.py checks the WGSL side against the same function bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_prep.reference import load
from model_prep.reference.forward import kv_f16


def bits(x: np.ndarray) -> list[int]:
    return [int(b) for b in np.asarray(x, np.float32).view(np.uint32).ravel()]


@pytest.mark.parametrize("value,want", [
    (1.0, 1.0),
    (0.1, 0.0999755859375),                      # to nearest
    (1.0 + 2.0 ** -11, 1.0),                     # a tie: to the even mantissa (1.0), not up
    (1.0 + 3 * 2.0 ** -11, 1.0 + 2.0 ** -9),     # a tie above an odd mantissa: up, to the even one
    (1.0 + 2.0 ** -11 + 2.0 ** -20, 1.0 + 2.0 ** -10),  # just past the tie: up
    (2049.0, 2048.0), (2051.0, 2052.0),          # ties where the f16 step is 2
    (2.0 ** -14, 2.0 ** -14),                    # the smallest normal f16 stays
    (2.0 ** -14 - 2.0 ** -25, 2.0 ** -14),       # the tie below it rounds up to it (even)
    (2.0 ** -14 - 2.0 ** -24, 0.0),              # the largest subnormal f16: flushed
    (2.0 ** -15, 0.0), (2.0 ** -24, 0.0), (1e-30, 0.0), (1e-45, 0.0),  # subnormal f16s or less: flushed
    (65504.0, 65504.0), (65519.0, 65504.0),      # the largest f16; below the tie with infinity
    (65520.0, 65504.0), (1e6, 65504.0), (3.4e38, 65504.0), (np.inf, 65504.0),  # clamped, never infinity
])
def test_kv_f16_values(value: float, want: float) -> None:
    for sign in (1.0, -1.0):
        got = kv_f16(np.array([sign * value], np.float32))
        assert got.dtype == np.float32
        assert bits(got) == bits(np.array([sign * want], np.float32)), (sign * value, float(got[0]))


def test_kv_f16_keeps_the_sign_of_zero_and_the_shape() -> None:
    x = np.array([[0.0, -0.0], [-1e-9, 1e-9], [-2.0 ** -20, 3.0]], np.float32)
    got = kv_f16(x)
    assert got.shape == x.shape and got.dtype == np.float32
    assert bits(got) == bits(np.array([[0.0, -0.0], [-0.0, 0.0], [-0.0, 3.0]], np.float32))


def test_kv_f16_is_an_f16_per_value() -> None:
    """Every result is a normal f16 or a zero, within half an f16 step of the clamped input, and rounding twice
    changes nothing."""
    rng = np.random.default_rng(10)
    x = (rng.standard_normal(100_000) * np.exp2(rng.uniform(-30, 20, 100_000))).astype(np.float32)
    got = kv_f16(x)
    h = got.astype(np.float16)
    assert np.array_equal(h.astype(np.float32), got)
    assert np.all((np.abs(got) >= 2.0 ** -14) | (got == 0)) and np.all(np.isfinite(got))
    clamped = np.clip(x, -65504, 65504).astype(np.float64)
    step = np.exp2(np.floor(np.log2(np.maximum(np.abs(clamped), 2.0 ** -14))) - 10)
    assert np.all((np.abs(got - clamped) <= step / 2) | ((got == 0) & (np.abs(x) < 2.0 ** -14)))
    assert np.array_equal(np.signbit(got), np.signbit(x))
    assert bits(kv_f16(got)) == bits(got)


def test_reference_engine_kv_f16_option(smollm2_package: Path) -> None:
    """With kv_f16 the reference engine's cache holds kv_f16 of what it would store in f32 (layer 0 sees the same
    input either way, so exactly that); the logits move a little, not the greedy token. Off by default."""
    prompt = [1, 504, 3458, 282, 4649, 314, 5, 2]
    f32 = load(smollm2_package, context=16)
    f16 = load(smollm2_package, context=16, kv_f16=True)
    a, b = f32.logits(prompt, 0), f16.logits(prompt, 0)
    s32, s16 = f32.model.state, f16.model.state  # type: ignore[attr-defined]
    n = len(prompt)
    assert not s32.kv_f16 and s16.kv_f16
    assert not np.array_equal(s32.k_cache[0, :n], kv_f16(s32.k_cache[0, :n]))  # f32 by default: not rounded
    np.testing.assert_array_equal(s16.k_cache[0, :n], kv_f16(s32.k_cache[0, :n]))
    np.testing.assert_array_equal(s16.v_cache[0, :n], kv_f16(s32.v_cache[0, :n]))
    for cache in (s16.k_cache, s16.v_cache):
        np.testing.assert_array_equal(cache[:, :n], kv_f16(cache[:, :n]))  # every layer holds f16 values
    assert not np.array_equal(a, b) and int(np.argmax(a)) == int(np.argmax(b))
    assert float(np.abs(a - b).max()) < 0.05 * float(np.abs(a).max())
