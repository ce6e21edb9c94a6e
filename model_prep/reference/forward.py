"""The numpy reference transformer: the ground truth every other engine is tested against.

Three plain objects, as in llama2.c: the config (config.ModelConfig), the weights (matrices as the package stores
them, dequantized to f32 when used through a bounded cache: weights.py; vectors as f32), and the run state (KV cache
and RoPE tables, allocated once). ``forward(tokens, pos)`` reads top to bottom. All math is f32. The KV cache holds
f32 by default (the CPU engine's); ``RunState(..., kv_f16=True)`` stores each cached key and value rounded as the WebGPU
engine's f16 cache does (``kv_f16``), so its greedy token ids can be checked against this engine's exactly.
Shapes: T = tokens in this call, S = cached positions, H = query heads, KV = key/value heads, D = head_dim.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .. import format as fmt
from ..config import ModelConfig
from ..rope import cos_sin
from .weights import DEFAULT_CACHE_BYTES, Matrix, WeightCache

F32 = npt.NDArray[np.float32]


@dataclass
class LayerWeights:
    attn_norm: F32  # [hidden]
    wq: Matrix  # [H*D, hidden]
    wk: Matrix  # [KV*D, hidden]
    wv: Matrix  # [KV*D, hidden]
    bq: F32 | None  # [H*D] (qwen2) or None
    bk: F32 | None  # [KV*D]
    bv: F32 | None  # [KV*D]
    q_norm: F32 | None  # [D] (qwen3: RMSNorm of each q head before RoPE) or None
    k_norm: F32 | None  # [D] (each k head)
    wo: Matrix  # [hidden, H*D]
    ffn_norm: F32  # [hidden]
    w_gate: Matrix  # [intermediate, hidden]
    w_up: Matrix  # [intermediate, hidden]
    w_down: Matrix  # [hidden, intermediate]
    post_attn_norm: F32 | None = None  # [hidden] (gemma3: RMSNorm of the attention output) or None
    post_ffw_norm: F32 | None = None  # [hidden] (gemma3: RMSNorm of the MLP output)


@dataclass
class Weights:
    token_embd: Matrix  # [vocab, hidden]
    layers: list[LayerWeights]
    output_norm: F32  # [hidden]
    output: Matrix  # [vocab, hidden]; the same object as token_embd when tied
    cache: WeightCache  # dequantized matrices in f32, bounded: weights.py

    @classmethod
    def from_tensors(cls, config: ModelConfig, vector: Callable[[str], F32], matrix: Callable[[str], Matrix],
                     cache_bytes: int = DEFAULT_CACHE_BYTES) -> Weights:
        """``vector(canonical name)`` -> f32 array, ``matrix(name)`` -> Matrix (from a package, or straight from a
        checkpoint); ``cache_bytes``: at most this many bytes of dequantized f32 matrices are kept."""
        layers = []
        for i in range(config.num_layers):
            b = f"blk.{i}."

            def bias(n: str, b: str = b) -> F32 | None:
                return vector(b + n) if config.attention_bias else None

            def qk_norm(n: str, b: str = b) -> F32 | None:
                return vector(b + n) if config.qk_norm else None

            def post_norm(n: str, b: str = b) -> F32 | None:
                return vector(b + n) if config.post_norms else None

            layers.append(LayerWeights(
                attn_norm=vector(b + "attn_norm.weight"), wq=matrix(b + "attn_q.weight"),
                wk=matrix(b + "attn_k.weight"), wv=matrix(b + "attn_v.weight"), bq=bias("attn_q.bias"),
                bk=bias("attn_k.bias"), bv=bias("attn_v.bias"), q_norm=qk_norm("attn_q_norm.weight"),
                k_norm=qk_norm("attn_k_norm.weight"), wo=matrix(b + "attn_output.weight"),
                ffn_norm=vector(b + "ffn_norm.weight"), w_gate=matrix(b + "ffn_gate.weight"),
                w_up=matrix(b + "ffn_up.weight"), w_down=matrix(b + "ffn_down.weight"),
                post_attn_norm=post_norm("post_attention_norm.weight"),
                post_ffw_norm=post_norm("post_ffw_norm.weight")))
        embd = matrix("token_embd.weight")
        output = embd if config.tie_word_embeddings else matrix("output.weight")
        return cls(embd, layers, vector("output_norm.weight"), output, WeightCache(cache_bytes))

    def stored_bytes(self) -> int:
        """Bytes of weights held in memory (planes or values, each object once; the cache not included)."""
        seen: dict[int, int] = {}
        vectors = [self.output_norm]
        for lw in self.layers:
            for m in (lw.wq, lw.wk, lw.wv, lw.wo, lw.w_gate, lw.w_up, lw.w_down):
                seen[id(m)] = m.stored_bytes()
            vectors += [v for v in (lw.attn_norm, lw.ffn_norm, lw.bq, lw.bk, lw.bv, lw.q_norm, lw.k_norm,
                                    lw.post_attn_norm, lw.post_ffw_norm) if v is not None]
        for m in (self.token_embd, self.output):
            seen[id(m)] = m.stored_bytes()
        return sum(seen.values()) + sum(int(v.nbytes) for v in vectors)


F16_MAX = 65504.0  # the largest finite f16


def kv_f16(x: F32) -> F32:
    """What the WebGPU engine's f16 KV cache gives back for ``x`` (webgpu_shaders/kv_f16.wgsl, bit for bit): clamped
    to [-65504, 65504], rounded to the nearest f16 (ties to even), a result below 2^-14 in magnitude (an f16
    subnormal, which a GPU's unpack2x16float may flush) made a zero of x's sign; as f32, in x's shape."""
    h = np.clip(np.asarray(x, np.float32), np.float32(-F16_MAX), np.float32(F16_MAX)).astype(np.float16)
    bits = h.view(np.uint16)
    bits = np.where((bits & 0x7C00) == 0, bits & 0x8000, bits).astype(np.uint16)
    return bits.view(np.float16).astype(np.float32)


class RunState:
    """Buffers allocated once per engine: the KV cache and the RoPE tables for ``context`` positions (a second pair
    for the sliding-window layers where their RoPE base differs: gemma3's rope_theta_sliding). ``kv_f16``: the cache
    keeps each key and value as kv_f16 rounds it (the WebGPU engine's f16 cache), else the f32 value (the default; the
    CPU engine's)."""

    def __init__(self, config: ModelConfig, context: int, kv_f16: bool = False):
        self.context = context
        self.kv_f16 = kv_f16
        kv_shape = (config.num_layers, context, config.num_kv_heads, config.head_dim)
        self.k_cache = np.zeros(kv_shape, np.float32)  # [layers, context, KV, D]
        self.v_cache = np.zeros(kv_shape, np.float32)  # [layers, context, KV, D]
        # [context, D/2] each: RoPE of base rope_theta, divided by config.rope_freq_factors (llama3, longrope) and
        # times rope_attn_factor (phi3's longrope) where the package has them
        self.cos, self.sin = cos_sin(config.rope_theta, config.head_dim, config.rope_freq_factors,
                                     config.rope_attn_factor, context)
        # [context, D/2] each: the sliding layers' tables (plain RoPE of base rope_theta_sliding), else the same
        self.cos_sliding, self.sin_sliding = self.cos, self.sin
        if config.rope_theta_sliding is not None:
            self.cos_sliding, self.sin_sliding = cos_sin(config.rope_theta_sliding, config.head_dim, None, None,
                                                         context)

    def cached(self, x: F32) -> F32:
        """What the KV cache keeps of keys or values ``x``: kv_f16(x) with kv_f16 on, else x."""
        return kv_f16(x) if self.kv_f16 else x


def rmsnorm(x: F32, w: F32, eps: float) -> F32:
    """x: [..., n], w: [n] -> x / sqrt(mean(x^2) + eps) * w (over the last axis)."""
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return (x / np.sqrt(ms + np.float32(eps))) * w


def rope(x: F32, cos: F32, sin: F32, layout: str) -> F32:
    """x: [T, heads, D]; cos, sin: [T, D/2]. Rotates pairs (2i, 2i+1) ("interleaved") or (i, i+D/2) ("half")."""
    c, s = cos[:, None, :], sin[:, None, :]
    if layout == fmt.ROPE_INTERLEAVED:
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * c - b * s
        out[..., 1::2] = b * c + a * s
        return out
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)


def softmax(x: F32, axis: int = -1) -> F32:
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def silu(x: F32) -> F32:
    return np.asarray(x / (np.float32(1) + np.exp(-x)), dtype=np.float32)


def gelu_tanh(x: F32) -> F32:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): PyTorch's gelu(approximate="tanh"), in f32."""
    inner = np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x * x * x)
    return np.asarray(np.float32(0.5) * x * (np.float32(1) + np.tanh(inner)), dtype=np.float32)


ACTIVATIONS: dict[str, Callable[[F32], F32]] = {fmt.ACT_SILU: silu, fmt.ACT_GELU_TANH: gelu_tanh}


def attention(q: F32, k: F32, v: F32, pos: int, scale: float | None = None, window: int | None = None) -> F32:
    """Causal grouped-query attention, softmax(q.k * scale) (default 1 / sqrt(D)); with ``window`` a query at
    position p sees only keys p - window + 1 .. p (a sliding-window layer).
    q: [T, H, D] at positions pos..pos+T-1; k, v: [S, KV, D] for positions 0..S-1 (S = pos + T) -> [T, H, D]."""
    t_len, heads, d = q.shape
    s_len, kv_heads, _ = k.shape
    group = heads // kv_heads
    qg = q.reshape(t_len, kv_heads, group, d).transpose(1, 2, 0, 3)  # [KV, G, T, D]
    if scale is None:
        scores = qg @ k.transpose(1, 2, 0)[:, None] / np.float32(np.sqrt(d))  # [KV, G, T, S]
    else:
        scores = qg @ k.transpose(1, 2, 0)[:, None] * np.float32(scale)  # [KV, G, T, S]
    key_pos, query_pos = np.arange(s_len)[None, :], (pos + np.arange(t_len))[:, None]
    visible = key_pos <= query_pos  # [T, S]
    if window is not None:
        visible &= key_pos > query_pos - window
    scores = np.where(visible, scores, np.float32(-np.inf))
    out = softmax(scores) @ v.transpose(1, 0, 2)[:, None]  # [KV, G, T, D]
    return out.transpose(2, 0, 1, 3).reshape(t_len, heads, d)


def forward(config: ModelConfig, w: Weights, state: RunState, tokens: npt.NDArray[np.int64], pos: int,
            all_logits: bool = False) -> F32:
    """Run ``tokens`` ([T] ids) at positions pos..pos+T-1, filling the KV cache.
    Returns logits [T, vocab] if ``all_logits`` else [vocab] for the last token."""
    t_len = len(tokens)
    if pos + t_len > state.context:
        raise ValueError(f"positions {pos}..{pos + t_len - 1} exceed the context of {state.context}")
    h, d = config.num_heads, config.head_dim
    kv = config.num_kv_heads
    act = ACTIVATIONS[config.hidden_act]
    mat = w.cache.f32  # a matrix's f32 values [rows, cols], dequantized on first use (weights.py)
    x = w.cache.rows(w.token_embd, tokens)  # [T, hidden]: only these rows are unpacked
    if config.embedding_scale is not None:  # gemma3: times f32(sqrt(hidden)); the tied output head stays raw
        x = x * np.float32(config.embedding_scale)
    for i, lw in enumerate(w.layers):
        sliding = config.layer_sliding(i)  # gemma3: a sliding-window layer, with its own RoPE base
        window = config.sliding_window if sliding else None
        cos = (state.cos_sliding if sliding else state.cos)[pos: pos + t_len]  # [T, D/2]
        sin = (state.sin_sliding if sliding else state.sin)[pos: pos + t_len]  # [T, D/2]
        # attention block: x += Wo attention(rope(qnorm(Wq xn + bq)), rope(knorm(Wk xn + bk)), Wv xn + bv)
        xn = rmsnorm(x, lw.attn_norm, config.rms_norm_eps)
        q, k, v = xn @ mat(lw.wq).T, xn @ mat(lw.wk).T, xn @ mat(lw.wv).T  # [T, H*D], [T, KV*D], [T, KV*D]
        if lw.bq is not None and lw.bk is not None and lw.bv is not None:
            q, k, v = q + lw.bq, k + lw.bk, v + lw.bv
        q, k = q.reshape(t_len, h, d), k.reshape(t_len, kv, d)
        if lw.q_norm is not None and lw.k_norm is not None:  # qwen3: RMSNorm of each head, before RoPE
            q, k = rmsnorm(q, lw.q_norm, config.rms_norm_eps), rmsnorm(k, lw.k_norm, config.rms_norm_eps)
        q = rope(q, cos, sin, config.rope_layout)
        state.k_cache[i, pos: pos + t_len] = state.cached(rope(k, cos, sin, config.rope_layout))
        state.v_cache[i, pos: pos + t_len] = state.cached(v.reshape(t_len, kv, d))
        att = attention(q, state.k_cache[i, : pos + t_len], state.v_cache[i, : pos + t_len], pos,
                        config.attention_scale, window)
        out = att.reshape(t_len, h * d) @ mat(lw.wo).T  # [T, hidden]
        if lw.post_attn_norm is not None:  # gemma3: the attention output normalized before the residual add
            out = rmsnorm(out, lw.post_attn_norm, config.rms_norm_eps)
        x = x + out
        # gated MLP block: SwiGLU (silu) or GeGLU (gelu_tanh)
        xn = rmsnorm(x, lw.ffn_norm, config.rms_norm_eps)
        gate, up = act(xn @ mat(lw.w_gate).T), xn @ mat(lw.w_up).T  # [T, intermediate] each
        out = (gate * up) @ mat(lw.w_down).T  # [T, hidden]
        if lw.post_ffw_norm is not None:  # gemma3: the MLP output normalized before the residual add
            out = rmsnorm(out, lw.post_ffw_norm, config.rms_norm_eps)
        x = x + out
    if not all_logits:
        x = x[-1:]
    logits = rmsnorm(x, w.output_norm, config.rms_norm_eps) @ mat(w.output).T  # [T or 1, vocab]
    return logits if all_logits else logits[0]
