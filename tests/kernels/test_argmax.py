"""argmax.wgsl against numpy: the best logit among the tokens a bitmask allows (ties to the lowest id), and its
log-probability under the softmax over the allowed tokens, through both entry points (main, and main_blocks +
main_pairs as the engine runs it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest

from .gpu import Gpu
from .kernels import argmax_blocks, argmax_grid, params, tuning

NONE = 0xFFFFFFFF
Run = Callable[[npt.NDArray[np.float32], npt.NDArray[np.uint32]], tuple[int, float]]


def mask_words(allowed: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint32]:
    """The bitmask of a boolean vector: bit (i % 32) of word i // 32 set = token i allowed (ceil(n / 32) words)."""
    n = len(allowed)
    bits = np.zeros(-(-n // 32) * 32, np.uint64)
    bits[:n] = allowed
    return (bits.reshape(-1, 32) << np.arange(32, dtype=np.uint64)).sum(1).astype(np.uint32)


def reference(logits: npt.NDArray[np.float32], allowed: npt.NDArray[np.bool_]) -> tuple[int, float]:
    """(token, logprob) in float64: logprob = l_k - logsumexp over the allowed logits, as -log1p(sum of exp(l - l_k)
    over the other allowed tokens) so that a near-certain token keeps its digits; -log(count) when every allowed
    logit is -inf (the kernel's documented convention)."""
    idx = np.flatnonzero(allowed)
    if len(idx) == 0:
        return NONE, float("-inf")
    values = logits[idx].astype(np.float64)
    j = int(np.argmax(values))  # the first maximum: the lowest allowed id
    m = values[j]
    if m == -np.inf:
        return int(idx[j]), -float(np.log(len(idx)))
    others = np.delete(values, j)
    return int(idx[j]), -float(np.log1p(np.exp(others - m).sum()))


def cases(rng: np.random.Generator, n: int) -> Iterator[tuple[str, npt.NDArray[np.float32], npt.NDArray[np.uint32],
                                                             npt.NDArray[np.bool_]]]:
    """(name, logits, mask words, allowed) for the masks and logits the kernel must handle."""
    logits = (rng.standard_normal(n) * 5.0).astype(np.float32)
    words = -(-n // 32)

    def case(name: str, lg: npt.NDArray[np.float32], allowed: npt.NDArray[np.bool_],
             mask: npt.NDArray[np.uint32] | None = None):
        return name, lg, mask_words(allowed) if mask is None else mask, allowed

    every = np.ones(n, bool)
    full = np.full(words, 0xFFFFFFFF, np.uint32)  # bits past n set too: they must be ignored
    yield case("all ones", logits, every, full)
    yield case("dense", logits, rng.random(n) < 0.5)
    for k in (1, 2, 3):
        sparse = np.zeros(n, bool)
        sparse[rng.choice(n, size=min(k, n), replace=False)] = True
        yield case(f"sparse {k}", logits, sparse)
    last = np.zeros(n, bool)  # the last word only (partial when n % 32 != 0), with garbage bits past n
    lo = (words - 1) * 32
    last[rng.choice(np.arange(lo, n), size=min(3, n - lo), replace=False)] = True
    garbage = mask_words(last)
    garbage[-1] |= np.uint32((0xFFFFFFFF << (n - lo)) & 0xFFFFFFFF) if n - lo < 32 else np.uint32(0)
    yield case("last word only", logits, last, garbage)
    # ties among allowed tokens (the lowest allowed id wins), beaten only by a disallowed token of a lower id
    if n >= 8:
        ties = logits.copy()
        allowed = rng.random(n) < 0.3
        at = np.sort(rng.choice(np.arange(1, n), size=3, replace=False))
        allowed[at] = True
        allowed[0] = False
        ties[at] = logits.max() + 1.0
        ties[0] = logits.max() + 2.0
        yield case("ties", ties, allowed)
    # -inf logits: allowed ones among finite ones, then every allowed one -inf
    neg = logits.copy()
    neg[rng.random(n) < 0.7] = -np.inf
    dense = rng.random(n) < 0.5
    yield case("-inf among finite", neg, dense | (neg > -np.inf) & (rng.random(n) < 0.1))
    all_neg = np.where(dense, np.float32(-np.inf), logits).astype(np.float32)
    if dense.any():
        yield case("allowed all -inf", all_neg, dense)
    # a near-certain token: logprob ~ -exp(-20), which rounds away if 1 + r is formed in f32
    if n >= 2:
        two = np.zeros(n, bool)
        a, b = rng.choice(n, size=2, replace=False)
        two[[a, b]] = True
        sure = logits.copy()
        sure[a], sure[b] = 10.0, -10.0
        yield case("near certain", sure, two)
    yield case("empty", logits, np.zeros(n, bool), np.zeros(words, np.uint32))


def check(run: Run, rng: np.random.Generator, n: int) -> None:
    for name, logits, mask, allowed in cases(rng, n):
        token, logprob = run(logits, mask)
        want_token, want_logprob = reference(logits, allowed)
        assert token == want_token, f"n={n} {name}: token {token}, numpy {want_token}"
        if want_token == NONE:
            continue
        # 1e-5 relative of float64 (plus a denormal's worth absolute: GPUs may flush exp of < -87 to zero)
        assert abs(logprob - want_logprob) <= 1e-5 * abs(want_logprob) + 1e-37, \
            f"n={n} {name}: logprob {logprob!r}, numpy {want_logprob!r}"


def read_out(gpu: Gpu, out: object) -> tuple[int, float]:
    raw = gpu.read(out, np.uint32)  # type: ignore[arg-type]
    return int(raw[0]), float(raw[1:2].view(np.float32)[0])


SIZES = [1, 7, 31, 300, 1000, 49152, 49153]
ENGINE = tuning("argmax.wgsl")  # {WG, ITEMS} as the engine compiles it (webgpu_shaders/kernels.json)


@pytest.mark.parametrize("n", SIZES)
def test_argmax_main(gpu: Gpu, rng: np.random.Generator, n: int) -> None:
    pipe = gpu.pipeline("argmax.wgsl", "main", {"WG": ENGINE["WG"]})
    out = gpu.zeros(8)
    p = gpu.uniform(params("argmax.wgsl", n=n))

    def run(logits: npt.NDArray[np.float32], mask: npt.NDArray[np.uint32]) -> tuple[int, float]:
        gpu.run(pipe, [gpu.storage(logits), gpu.storage(mask), out, p], argmax_grid())
        return read_out(gpu, out)

    check(run, rng, n)


@pytest.mark.parametrize("n,wg,items", [
    (7, 4, 1), (31, 8, 1), (300, 16, 2), (1000, 32, 3),
    # the engine's tuning, at SmolLM2's vocabulary (49152), one past it, Qwen2.5's (151936) and one logit
    *[(n, ENGINE["WG"], ENGINE["ITEMS"]) for n in (1, 49152, 49153, 151936)],
])
def test_argmax_two_dispatches(gpu: Gpu, rng: np.random.Generator, n: int, wg: int, items: int) -> None:
    """main_blocks (a state per block of WG * ITEMS logits) then main_pairs (the blocks merged): the engine's path;
    ties to the lowest index across blocks too, blocks with no allowed token skipped."""
    blocks_pipe = gpu.pipeline("argmax.wgsl", "main_blocks", {"WG": wg, "ITEMS": items})
    pairs_pipe = gpu.pipeline("argmax.wgsl", "main_pairs", {"WG": wg})
    blocks = argmax_blocks(n, wg, items)
    states, out = gpu.zeros(16 * blocks), gpu.zeros(8)
    pb, pp = gpu.uniform(params("argmax.wgsl", n=n)), gpu.uniform(params("argmax.wgsl", n=blocks))

    def run(logits: npt.NDArray[np.float32], mask: npt.NDArray[np.uint32]) -> tuple[int, float]:
        gpu.run(blocks_pipe, [gpu.storage(logits), gpu.storage(mask), states, pb], (blocks, 1, 1))
        gpu.run(pairs_pipe, [states, None, out, pp], argmax_grid())  # binding 1 (the mask) is main_blocks' only
        return read_out(gpu, out)

    check(run, rng, n)
    if n > 3:  # unmasked, the maximum in the last (partial) block and equal maxima in different blocks
        logits = (rng.standard_normal(n) * 5.0).astype(np.float32)
        full = np.full(-(-n // 32), 0xFFFFFFFF, np.uint32)
        for idx, bump in [([n - 1, n - 2], 2.0), ([n - 1, n // 2, 2], 1.0)]:
            case = logits.copy()
            case[idx] = logits.max() + bump
            assert run(case, full)[0] == int(np.argmax(case))


def test_mask_words() -> None:
    allowed = np.zeros(40, bool)
    allowed[[0, 31, 33]] = True
    assert mask_words(allowed).tolist() == [0x80000001, 0x2]
