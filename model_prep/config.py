"""The architecture config a package carries (manifest "config"), shared by the readers and the engines."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from . import format as fmt
from .errors import PackageError


@dataclass(frozen=True)
class ModelConfig:
    architecture: str  # format.ARCHITECTURES: "llama", "qwen2", "qwen3", "phi3" or "gemma3"
    vocab_size: int  # rows of the embedding and the output head
    hidden_size: int  # width of the residual stream
    intermediate_size: int  # width of the gated MLP (SwiGLU, or GeGLU with hidden_act "gelu_tanh")
    num_layers: int
    num_heads: int  # query heads
    num_kv_heads: int  # key/value heads (grouped-query attention: num_heads % num_kv_heads == 0)
    head_dim: int  # values per head; q rows = num_heads * head_dim
    rms_norm_eps: float
    rope_theta: float  # RoPE base
    rope_layout: str  # format.ROPE_INTERLEAVED or format.ROPE_HALF
    context_length: int  # longest sequence the model was trained for, tokens
    tie_word_embeddings: bool  # output head reuses token_embd.weight
    attention_bias: bool  # q/k/v projections have biases (qwen2)
    # one divisor per RoPE frequency (head_dim / 2 of them; model_prep/rope.py): Llama 3.x "llama3" scaling. None:
    # plain RoPE. A package with it is format version 2 (format.FORMAT_VERSION_ROPE_FACTORS); without it the key is
    # absent from the manifest, which stays version 1.
    rope_freq_factors: tuple[float, ...] | None = None
    # RMSNorm (eps rms_norm_eps) on each head of q and of k, after the projection and before RoPE, weights
    # blk.N.attn_q_norm.weight / attn_k_norm.weight [head_dim] (qwen3). A package with it is format version 3
    # (format.FORMAT_VERSION_QK_NORM); without it the key is absent from the manifest.
    qk_norm: bool = False
    # cos and sin of every RoPE angle multiplied by this (Phi-3's longrope attention factor, transformers'
    # attention_scaling; model_prep/rope.py). None: 1. A package with it is format version 4
    # (format.FORMAT_VERSION_ROPE_ATTN_FACTOR); without it the key is absent from the manifest.
    rope_attn_factor: float | None = None
    # Gemma 3 (format version 5, format.FORMAT_VERSION_GEMMA3; each absent from the manifest where it has the llama
    # value, so other packages keep their bytes and version):
    # the embedding row is multiplied by this on lookup (f32(sqrt(hidden_size))); the tied output head uses the raw
    # embedding. None: 1.
    embedding_scale: float | None = None
    # blk.N.post_attention_norm.weight / post_ffw_norm.weight [hidden]: the attention output and the MLP output are
    # each RMS-normalized (times the weight) before they are added to the residual stream
    post_norms: bool = False
    hidden_act: str = fmt.ACT_SILU  # MLP down(act(gate) * up): format.HIDDEN_ACTS ("silu": SwiGLU, "gelu_tanh")
    attention_scale: float | None = None  # softmax(q.k * attention_scale); None: 1 / sqrt(head_dim)
    # "sliding" layers (format.LAYER_SLIDING) attend to the last sliding_window positions (the query's own included),
    # "full" ones to every earlier position; one type per layer. None: every layer is full.
    sliding_window: int | None = None
    layer_types: tuple[str, ...] | None = None
    # RoPE base of the "sliding" layers (no rope_freq_factors, no rope_attn_factor there); "full" layers use
    # rope_theta (and rope_freq_factors). None: every layer uses rope_theta.
    rope_theta_sliding: float | None = None

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.rope_layout not in fmt.ROPE_LAYOUTS:
            raise ValueError(f"rope_layout {self.rope_layout!r} is not one of {fmt.ROPE_LAYOUTS}")
        if self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for RoPE")
        if self.qk_norm and self.attention_bias:
            raise ValueError("qk_norm with attention_bias (a bias before the per-head norm) is not supported")
        f = self.rope_freq_factors
        if f is not None:
            if len(f) != self.head_dim // 2:
                raise ValueError(f"rope_freq_factors has {len(f)} values, head_dim {self.head_dim} needs "
                                 f"{self.head_dim // 2}")
            if not all(math.isfinite(v) and v > 0 for v in f):
                raise ValueError("rope_freq_factors must be finite and positive")
        # the optional positive numbers: longrope's attention factor, then Gemma 3's
        for name in ("rope_attn_factor", "embedding_scale", "attention_scale", "rope_theta_sliding"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, float) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite positive number, not {v!r}")
        self._check_gemma3_keys()

    def _check_gemma3_keys(self) -> None:
        if not isinstance(self.post_norms, bool):
            raise ValueError(f"post_norms must be true or false, not {self.post_norms!r}")
        if self.hidden_act not in fmt.HIDDEN_ACTS:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not one of {fmt.HIDDEN_ACTS}")
        w, types = self.sliding_window, self.layer_types
        if (w is None) != (types is None):
            raise ValueError("sliding_window and layer_types come together (one without the other)")
        if w is not None and types is not None:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ValueError(f"sliding_window must be a positive integer, not {w!r}")
            if len(types) != self.num_layers or not set(types) <= set(fmt.LAYER_TYPES):
                raise ValueError(f"layer_types must name one of {fmt.LAYER_TYPES} for each of the {self.num_layers} "
                                 f"layers, not {list(types)!r}")

    @property
    def format_version(self) -> int:
        """The package format version a package of this config is written as (the oldest that can hold it)."""
        if self.gemma3_keys:
            return fmt.FORMAT_VERSION_GEMMA3
        if self.rope_attn_factor is not None:
            return fmt.FORMAT_VERSION_ROPE_ATTN_FACTOR
        if self.qk_norm:
            return fmt.FORMAT_VERSION_QK_NORM
        return fmt.FORMAT_VERSION if self.rope_freq_factors is None else fmt.FORMAT_VERSION_ROPE_FACTORS

    @property
    def gemma3_keys(self) -> list[str]:
        """The Gemma 3 config keys this config sets (format version 5), for the version and messages."""
        return [k for k, on in (("embedding_scale", self.embedding_scale is not None), ("post_norms", self.post_norms),
                                ("hidden_act", self.hidden_act != fmt.ACT_SILU),
                                ("attention_scale", self.attention_scale is not None),
                                ("sliding_window", self.sliding_window is not None),
                                ("layer_types", self.layer_types is not None),
                                ("rope_theta_sliding", self.rope_theta_sliding is not None)) if on]

    @property
    def version_features(self) -> str:
        """The config keys that need a later format version than 1, for messages (e.g. "rope_freq_factors")."""
        return ", ".join([k for k, on in (("rope_freq_factors", self.rope_freq_factors is not None),
                                         ("qk_norm", self.qk_norm),
                                         ("rope_attn_factor", self.rope_attn_factor is not None)) if on]
                         + self.gemma3_keys)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.rope_freq_factors is None:
            del d["rope_freq_factors"]  # version-1 packages stay byte-identical
        else:
            d["rope_freq_factors"] = list(self.rope_freq_factors)
        if not self.qk_norm:
            del d["qk_norm"]  # likewise
        if self.rope_attn_factor is None:
            del d["rope_attn_factor"]  # likewise
        for key, default in _GEMMA3_DEFAULTS.items():
            if d[key] == default:
                del d[key]  # likewise
        if self.layer_types is not None:
            d["layer_types"] = list(self.layer_types)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        optional = {"rope_freq_factors", "qk_norm", "rope_attn_factor", *_GEMMA3_DEFAULTS}
        names = {f.name for f in fields(cls)}
        missing = names - optional - d.keys()
        if missing:
            raise PackageError(f"manifest config lacks {', '.join(sorted(missing))}; prepare the package again")
        try:
            values = {k: d[k] for k in names if k in d}
            if not isinstance(values.get("qk_norm", False), bool):
                raise ValueError(f"qk_norm must be true or false, not {values['qk_norm']!r}")
            if values.get("rope_freq_factors") is not None:
                values["rope_freq_factors"] = tuple(float(v) for v in values["rope_freq_factors"])
            if values.get("rope_attn_factor") is not None:
                a = values["rope_attn_factor"]
                if isinstance(a, bool) or not isinstance(a, (int, float)):
                    raise ValueError(f"rope_attn_factor must be a number, not {a!r}")
                values["rope_attn_factor"] = float(a)
            for key in ("embedding_scale", "attention_scale", "rope_theta_sliding"):
                v = values.get(key)
                if v is not None:
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise ValueError(f"{key} must be a number, not {v!r}")
                    values[key] = float(v)
            if values.get("layer_types") is not None:
                if not isinstance(values["layer_types"], list):
                    raise ValueError(f"layer_types must be a list, not {values['layer_types']!r}")
                values["layer_types"] = tuple(values["layer_types"])
            return cls(**values)
        except (ValueError, TypeError) as e:
            raise PackageError(f"manifest config is invalid: {e}; prepare the package again") from e

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the architecture needs, canonical name -> numpy shape (rows, cols) or (n,)."""
        h, q, kv = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (self.vocab_size, h), "output_norm.weight": (h,)}
        if not self.tie_word_embeddings:
            shapes["output.weight"] = (self.vocab_size, h)
        for i in range(self.num_layers):
            b = f"blk.{i}."
            shapes |= {
                b + "attn_norm.weight": (h,),
                b + "attn_q.weight": (q, h),
                b + "attn_k.weight": (kv, h),
                b + "attn_v.weight": (kv, h),
                b + "attn_output.weight": (h, q),
                b + "ffn_norm.weight": (h,),
                b + "ffn_gate.weight": (self.intermediate_size, h),
                b + "ffn_up.weight": (self.intermediate_size, h),
                b + "ffn_down.weight": (h, self.intermediate_size),
            }
            if self.attention_bias:
                shapes |= {b + "attn_q.bias": (q,), b + "attn_k.bias": (kv,), b + "attn_v.bias": (kv,)}
            if self.qk_norm:
                shapes |= {b + "attn_q_norm.weight": (self.head_dim,), b + "attn_k_norm.weight": (self.head_dim,)}
            if self.post_norms:
                shapes |= {b + "post_attention_norm.weight": (h,), b + "post_ffw_norm.weight": (h,)}
        return shapes

    def layer_sliding(self, layer: int) -> bool:
        """Whether layer ``layer`` is a sliding-window one (attends to the last sliding_window positions only)."""
        return self.layer_types is not None and self.layer_types[layer] == fmt.LAYER_SLIDING


# the Gemma 3 keys and the values that leave them out of the manifest (the llama behaviour)
_GEMMA3_DEFAULTS: dict[str, Any] = {"embedding_scale": None, "post_norms": False, "hidden_act": fmt.ACT_SILU,
                                    "attention_scale": None, "sliding_window": None, "layer_types": None,
                                    "rope_theta_sliding": None}
