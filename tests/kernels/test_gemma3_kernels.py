"""The kernel features Gemma 3 needs, against numpy: sliding-window attention (WINDOW) in attention.wgsl,
attention_prefill.wgsl and attention_split.wgsl + attention_combine.wgsl, at head_dim 256 where the engine runs it;
the post-norms' residual add (rmsnorm.wgsl ACCUMULATE); the GeGLU gate (gelu_tanh: swiglu.wgsl and matvec main_swiglu
GELU); the embedding scale (embed*.wgsl SCALE)."""

from __future__ import annotations

import numpy as np
import pytest

from model_prep import kquants, quant
from model_prep.reference.forward import kv_f16

from .gpu import Gpu
from .kernels import (
    attention_combine_grid,
    attention_grid,
    attention_split_grid,
    attention_split_shape,
    attention_splits,
    elementwise_grid,
    embed_f32_grid,
    embed_grid,
    matvec_f32_grid,
    matvec_grid,
    params,
    rmsnorm_grid,
    tuning,
)
from .reference import (
    EPS32,
    F64,
    assert_close,
    assert_kv_rounds,
    dense_tolerance,
    dot_tolerance,
    kv_values,
    kv_words,
    random_qtensor,
    rmsnorm,
)
from .test_attention_prefill import run_prefill
from .test_kquants import planes, random_ktensor
from .test_rope_table import rope_ref, table


def windowed_ref(q: F64, k_cache: F64, v_cache: F64, positions: np.ndarray, scale: float,
                 window: int) -> tuple[F64, F64]:
    """As test_attention.attention_ref, each query at position p seeing keys max(0, p - window + 1) .. p."""
    tokens, heads, _ = q.shape
    group = heads // k_cache.shape[0]
    out = np.empty_like(q)
    smax = np.empty((tokens, heads, 1))
    for t in range(tokens):
        lo = max(0, int(positions[t]) - window + 1)
        for h in range(heads):
            keys = k_cache[h // group, lo: positions[t] + 1]
            s = scale * keys @ q[t, h]
            p = np.exp(s - s.max())
            out[t, h] = (p / p.sum()) @ v_cache[h // group, lo: positions[t] + 1]
            smax[t, h] = np.abs(s).max()
    return out, smax


def attention_tol(smax: F64, d: int, vmax: float, n: float, extra: float = 0.0) -> F64:
    """test_attention.py's bound: score errors ~eps sqrt(d) |s|, exp ~(1 + |s|) ulps, sums of n values."""
    score_err = 4.0 * EPS32 * np.sqrt(d) * smax + 16.0 * EPS32 * (1.0 + smax)
    return vmax * (2.0 * score_err + 4.0 * EPS32 * np.sqrt(n) + extra)


@pytest.mark.parametrize("d,positions,window,wg", [
    (256, [150], 8, 64),                   # gemma3's head size, decode deep in the cache: 8 keys of 151
    (256, list(range(10, 30)), 8, 64),     # a 20-token prefill, windows crossing the 10-token prefix
    (64, [3, 4, 5], 8, 32),                # positions below the window: every key
    (64, [100], 70, 32),                   # a window over three blocks, the first partly seen
])
def test_attention_window(gpu: Gpu, rng: np.random.Generator, d: int, positions: list[int], window: int,
                          wg: int) -> None:
    heads, kv_heads, capacity = 4, 1, 160
    pos = np.array(positions, np.uint32)
    scale = 0.0625  # gemma3: query_pre_attn_scalar ** -0.5, not 1 / sqrt(d)
    q = (rng.standard_normal((len(pos), heads, d)) * 2.0).astype(np.float32)
    k_cache = kv_f16((rng.standard_normal((kv_heads, capacity, d)) * 2.0).astype(np.float32))  # as an f16 cache holds
    v_cache = kv_f16(rng.standard_normal((kv_heads, capacity, d)).astype(np.float32))
    out = gpu.zeros(q.nbytes)
    p = gpu.uniform(params("attention.wgsl", num_heads=heads, num_kv_heads=kv_heads, head_dim=d, capacity=capacity,
                           scale=scale))
    gpu.run(gpu.pipeline("attention.wgsl", "main", {"WG": wg, "WINDOW": window}),
            [gpu.storage(pos), gpu.storage(q), gpu.storage(kv_words(k_cache)), gpu.storage(kv_words(v_cache)), out, p],
            attention_grid(heads, len(pos)))
    want, smax = windowed_ref(q.astype(np.float64), k_cache.astype(np.float64), v_cache.astype(np.float64), pos,
                              scale, window)
    tol = attention_tol(smax, d, float(np.abs(v_cache).max()), float(window))
    assert_close(gpu.read(out).reshape(q.shape), want, tol, f"attention d={d} window {window} at {positions}")


@pytest.mark.parametrize("d,start,tokens,window,bq,bk,split", [
    (64, 0, 20, 8, 16, 8, 64),     # a first pass of 20 tokens, window 8: later queries skip whole blocks
    (128, 10, 21, 5, 16, 8, 64),   # after a 10-token prefix, a window inside one block or across two
    (32, 40, 9, 33, 8, 16, 64),    # a window that is not a multiple of the block
    (64, 600, 60, 100, 16, 8, 64),  # positions split 11 ways: splits wholly before a query's window weigh 0
    (128, 600, 60, 512, 16, 8, 64),  # gemma3's window, head_dim 128: the first splits seen by the first queries only
    (32, 40, 9, 33, 8, 16, 8),     # splits of one block, a window that is not a multiple of them
])
def test_attention_prefill_window(gpu: Gpu, rng: np.random.Generator, d: int, start: int, tokens: int,
                                  window: int, bq: int, bk: int, split: int) -> None:
    heads, kv_heads, capacity = 6, 2, start + tokens + 36
    pos = np.arange(start, start + tokens, dtype=np.uint32)
    scale = 1.0 / np.sqrt(d)
    q = (rng.standard_normal((tokens, heads, d)) * 2.0).astype(np.float32)
    k_cache = kv_f16((rng.standard_normal((kv_heads, capacity, d)) * 2.0).astype(np.float32))  # as an f16 cache holds
    v_cache = kv_f16(rng.standard_normal((kv_heads, capacity, d)).astype(np.float32))
    got, splits = run_prefill(gpu, q, k_cache, v_cache, pos, scale, bq, bk, split, 16, window)
    want, smax = windowed_ref(q.astype(np.float64), k_cache.astype(np.float64), v_cache.astype(np.float64), pos,
                              scale, window)
    tol = attention_tol(smax, d, float(np.abs(v_cache).max()), float(window), 8.0 * EPS32 * splits)
    assert_close(got.reshape(q.shape), want, tol, f"prefill d={d} window {window} from {start}, {splits} splits")


@pytest.mark.parametrize("d,pos,window,group,split", [
    (256, 40, 8, 0, 0),       # the engine's shape (gemma3-270m's 4 / 1 heads)
    (256, 5, 8, 1, 8),        # below the window: every key
    (64, 100, 20, 4, 16),     # splits wholly before the window write empty parts; one partly seen
    (64, 47, 16, 2, 16),      # the window starts exactly at a split boundary
])
@pytest.mark.parametrize("early", [False, True])  # keys and values loaded early (taken in the d = 64 rows)
def test_attention_split_window(gpu: Gpu, rng: np.random.Generator, d: int, pos: int, window: int,
                                group: int, split: int, early: bool) -> None:
    heads, kv_heads, capacity, half = 4, 1, 128, True
    shape = attention_split_shape(d, heads, kv_heads, tuning("attention_split.wgsl"))
    if group:
        shape = {**shape, "GROUP": group, "SPLIT": split, "TP": 2}
    split = shape["SPLIT"]
    n_all = heads + 2 * kv_heads
    scale = 0.0625
    cs = table(capacity, d, 10000.0)
    qkv = (rng.standard_normal(n_all * d) * 2.0).astype(np.float32)
    bias = np.zeros(n_all * d, np.float32)
    k_cache = kv_f16((rng.standard_normal((kv_heads, capacity, d)) * 2.0).astype(np.float32))  # as an f16 cache holds
    v_cache = kv_f16(rng.standard_normal((kv_heads, capacity, d)).astype(np.float32))
    k_buf = gpu.storage(kv_words(k_cache))
    splits = attention_splits(capacity, split)
    part = gpu.storage(np.full(heads * splits * (d + 4), np.nan, np.float32))  # stale parts must not be read
    positions = gpu.storage(np.array([pos], np.uint32))
    p = gpu.uniform(params("attention_split.wgsl", num_heads=heads, num_kv_heads=kv_heads, head_dim=d,
                           capacity=capacity, splits=splits, scale=scale))
    gpu.run(gpu.pipeline("attention_split.wgsl", "main", {**shape, "HALF": half, "WINDOW": window, "EARLY": early}),
            [positions, gpu.storage(cs), gpu.storage(qkv), gpu.storage(bias), k_buf, gpu.storage(kv_words(v_cache)),
             part, p], attention_split_grid(heads, capacity, shape))
    out = gpu.zeros(4 * heads * d)
    combine = {k: tuning("attention_combine.wgsl")[k] for k in ("WG", "CG")}
    pc = gpu.uniform(params("attention_combine.wgsl", num_heads=heads, head_dim=d, capacity=capacity, splits=splits,
                            split_positions=split))
    gpu.run(gpu.pipeline("attention_combine.wgsl", "main", combine), [positions, part, out, pc],
            attention_combine_grid(heads, combine["CG"]))
    q = qkv[: heads * d].reshape(1, heads, d)
    k = qkv[heads * d: (heads + kv_heads) * d].reshape(1, kv_heads, d)
    at = np.array([pos])
    # the new key as the kernel cached it (and attended to it): the f16 of its f32 rotation; the value: exactly
    got_k = kv_values(gpu.read(k_buf, np.uint32).reshape(kv_heads, capacity, d // 2))[:, pos]
    assert_kv_rounds(got_k, rope_ref(k, cs, at, half)[0], 4 * EPS32 * np.abs(k).max(), "k cache at pos")
    full_k = k_cache.astype(np.float64)
    full_v = v_cache.astype(np.float64)
    full_k[:, pos] = got_k
    full_v[:, pos] = kv_f16(qkv[(heads + kv_heads) * d:].reshape(kv_heads, d))
    want, smax = windowed_ref(rope_ref(q, cs, at, half), full_k, full_v, at, scale, window)
    tol = attention_tol(smax, d, float(np.abs(full_v).max()), float(window), 8.0 * EPS32 * splits)
    assert_close(gpu.read(out).reshape(1, heads, d), want, tol, f"split d={d} window {window} at {pos}")


def test_rmsnorm_accumulate(gpu: Gpu, rng: np.random.Generator) -> None:
    """ACCUMULATE: y += rmsnorm(x) * w (gemma3's post-attention and post-MLP norms into the residual stream)."""
    tokens, n = 3, 640
    x = (rng.standard_normal((tokens, n)) * 5.0).astype(np.float32)
    w = rng.uniform(0.5, 2.0, n).astype(np.float32)
    h = rng.standard_normal((tokens, n)).astype(np.float32)
    y = gpu.storage(h)
    p = gpu.uniform(params("rmsnorm.wgsl", n=n, eps=1e-6))
    gpu.run(gpu.pipeline("rmsnorm.wgsl", "main", {**tuning("rmsnorm.wgsl"), "ACCUMULATE": True}),
            [gpu.storage(x), gpu.storage(w), y, p], rmsnorm_grid(tokens))
    normed = rmsnorm(x.astype(np.float64), w.astype(np.float64), 1e-6)
    want = h + normed
    tol = (np.sqrt(n) + 8.0) * EPS32 * np.abs(normed) + EPS32 * np.abs(want)
    assert_close(gpu.read(y).reshape(tokens, n), want, tol, "rmsnorm accumulate")


def gelu_tanh(g: F64) -> F64:
    return 0.5 * g * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (g + 0.044715 * g ** 3)))


def test_swiglu_gelu(gpu: Gpu, rng: np.random.Generator) -> None:
    """GELU: y = gelu_tanh(gate) * up (gemma3's GeGLU), also at gates far into both tails."""
    n = 1029
    g = (rng.standard_normal(n) * 4.0).astype(np.float32)
    g[:4] = [-100.0, 100.0, 0.0, -3.0e4]
    u = rng.standard_normal(n).astype(np.float32)
    y = gpu.zeros(4 * n)
    wg = tuning("swiglu.wgsl")["WG"]
    gpu.run(gpu.pipeline("swiglu.wgsl", "main", {"WG": wg, "GELU": True}),
            [gpu.storage(g), gpu.storage(u), y, gpu.uniform(params("swiglu.wgsl", n=n))], elementwise_grid(n, wg))
    want = gelu_tanh(g.astype(np.float64)) * u
    # tanh is good to a few ulps of 1 (backends: ~1e-6 absolute); the rest a few roundings
    tol = (16.0 * EPS32 + 2e-6) * np.abs(g * u) + 1e-30
    assert_close(gpu.read(y), want, tol, "gelu_tanh")


@pytest.mark.parametrize("storage", ["q4", "q8", "q4k"])
def test_matvec_swiglu_gelu(gpu: Gpu, rng: np.random.Generator, storage: str) -> None:
    """main_swiglu with GELU: y = gelu_tanh(Wg x') * (Wu x'), x' = rmsnorm(x) * norm_w."""
    rows, cols = 37, 512
    shader = "matvec_kq.wgsl" if storage == "q4k" else "matvec.wgsl"
    t = tuning(shader, "cpu")
    if storage == "q4k":
        gate, up = random_ktensor(rng, storage, rows, cols), random_ktensor(rng, storage, rows, cols)
        gp, upp = planes(gpu, gate), planes(gpu, up)
        w_bufs: list = [gp[0], None, gp[2]]
        u_bufs: list = [upp[0], None, upp[2]]
        constants = {"KTYPE": 4}
    else:
        gate, up = random_qtensor(rng, storage, rows, cols), random_qtensor(rng, storage, rows, cols)
        w_bufs = [gpu.storage(gate.planes["qweight"]), gpu.storage(gate.planes["scales"])]
        u_bufs = [gpu.storage(up.planes["qweight"]), gpu.storage(up.planes["scales"])]
        constants = {"QBITS": gate.qbits}
    x = rng.standard_normal(cols).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    y = gpu.zeros(4 * rows)
    p = gpu.uniform(params(shader, rows=rows, cols=cols, row_offset=0, eps=1e-6))
    gpu.run(gpu.pipeline(shader, "main_swiglu", {**constants, **t, "GELU": True}),
            [*w_bufs, gpu.storage(x), gpu.storage(nw), *u_bufs, y, p], matvec_grid(rows, t["TY"], t["R"]))
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), 1e-6)
    g, u = gate.w @ xn, up.w @ xn
    want = gelu_tanh(g) * u
    # as test_matvec_swiglu: each dot product's tolerance through the gate (gelu_tanh' <= 1.13), plus tanh's ~1e-6
    tol_g = dot_tolerance(gate, xn) + 8 * EPS32 * np.abs(g)
    tol_u = dot_tolerance(up, xn) + 8 * EPS32 * np.abs(u)
    tol = 1.2 * np.abs(u) * tol_g + np.abs(gelu_tanh(g)) * tol_u + (16 * EPS32 + 2e-6) * np.abs(g * u)
    assert_close(gpu.read(y), want, tol, f"{storage} matvec gelu")


def test_matvec_f32_swiglu_gelu(gpu: Gpu, rng: np.random.Generator) -> None:
    """matvec_f32.wgsl main_swiglu with GELU (tiny f32 gemma3 packages)."""
    rows, cols, eps = 29, 96, 1e-6
    wg = rng.standard_normal((rows, cols)).astype(np.float32)
    wu = rng.standard_normal((rows, cols)).astype(np.float32)
    x = rng.standard_normal(cols).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    y = gpu.zeros(4 * rows)
    t = tuning("matvec_f32.wgsl")
    p = gpu.uniform(params("matvec_f32.wgsl", rows=rows, cols=cols, row_offset=0, eps=eps))
    gpu.run(gpu.pipeline("matvec_f32.wgsl", "main_swiglu", {**t, "GELU": True}),
            [gpu.storage(wg), gpu.storage(x), gpu.storage(nw), gpu.storage(wu), y, p], matvec_f32_grid(rows, t["R"]))
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    g, u = wg.astype(np.float64) @ xn, wu.astype(np.float64) @ xn
    want = gelu_tanh(g) * u
    tol_g = dense_tolerance(wg.astype(np.float64), xn) + 8 * EPS32 * np.abs(g)
    tol_u = dense_tolerance(wu.astype(np.float64), xn) + 8 * EPS32 * np.abs(u)
    tol = 1.2 * np.abs(u) * tol_g + np.abs(gelu_tanh(g)) * tol_u + (16 * EPS32 + 2e-6) * np.abs(g * u)
    assert_close(gpu.read(y), want, tol, "f32 matvec gelu")


@pytest.mark.parametrize("storage", ["q8", "q4", "q4k", "f32"])
def test_embed_scale(gpu: Gpu, rng: np.random.Generator, storage: str) -> None:
    """SCALE: each looked-up value times f32(sqrt(hidden)), one rounding, as the reference engine (q8: 2 ulps)."""
    vocab, cols = 30, 256
    scale = float(np.float32(np.sqrt(640.0)))
    ids = np.array([0, 29, 7, 7], np.uint32)
    out = gpu.zeros(4 * len(ids) * cols)
    p = gpu.uniform(params("embed.wgsl", row_start=0, rows=vocab, cols=cols, tokens=len(ids)))
    if storage == "f32":
        w = rng.standard_normal((vocab, cols)).astype(np.float32)
        wg = tuning("embed_f32.wgsl")["WG"]
        gpu.run(gpu.pipeline("embed_f32.wgsl", "main", {"WG": wg, "SCALE": scale}),
                [gpu.storage(ids), gpu.storage(w), out, p], embed_f32_grid(cols, len(ids), wg))
    elif storage == "q4k":
        k = random_ktensor(rng, storage, vocab, cols)
        w = kquants.dequantize(storage, k.planes, vocab, cols)
        wg = tuning("embed_kq.wgsl")["WG"]
        gpu.run(gpu.pipeline("embed_kq.wgsl", "main", {"WG": wg, "KTYPE": 4, "SCALE": scale}),
                [gpu.storage(ids), *planes(gpu, k), out, p], embed_grid(cols, len(ids), 4, wg))
    else:
        q = random_qtensor(rng, storage, vocab, cols)
        w = quant.dequantize(storage, q.planes, vocab, cols)
        wg = tuning("embed.wgsl")["WG"]
        gpu.run(gpu.pipeline("embed.wgsl", "main", {"WG": wg, "QBITS": q.qbits, "SCALE": scale}),
                [gpu.storage(ids), gpu.storage(q.planes["qweight"]), gpu.storage(q.planes["scales"]), out, p],
                embed_grid(cols, len(ids), q.qbits, wg))
    want = w[ids].astype(np.float64) * np.float32(scale)
    got = gpu.read(out).reshape(len(ids), cols)
    if storage == "q8":  # (s q) SCALE: a compiler may take s SCALE first (loop-invariant): two roundings either way
        assert_close(got, want, 2 * EPS32 * np.abs(want), "q8 embed scale")
    else:
        np.testing.assert_array_equal(got, want.astype(np.float32))  # value (exact or one rounding) * SCALE
