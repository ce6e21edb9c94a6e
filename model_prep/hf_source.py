"""Read a Hugging Face checkpoint folder (config.json + *.safetensors + tokenizer.json): Llama, Qwen2, Qwen3 (dense),
SmolLM, Phi-3 / Phi-3.5-mini (fused qkv_proj and gate_up_proj split by rows into the package's q/k/v and gate/up),
Gemma 3 text models (model_type gemma3_text: RMSNorm weights w stored as 1 + w, in f32 as transformers computes it)."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import format as fmt
from . import rope
from .checkpoint import (
    Checkpoint,
    ContextNames,
    SourceTensor,
    capped_context,
    gemma3_config,
    gemma3_sliding,
    split_fused,
)
from .config import ModelConfig
from .errors import InputError, UnsupportedError

# safetensors dtype -> (numpy dtype of the stored words, how to widen them to f32). numpy has no bfloat16, which is
# why we read the (documented, tiny) safetensors layout ourselves instead of safetensors.numpy.
_DTYPES: dict[str, str] = {"F32": "<f4", "F16": "<f2", "BF16": "<u2"}

# HF parameter name -> canonical name; {i} is the layer index
_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.q_proj.bias": "blk.{i}.attn_q.bias",
    "model.layers.{i}.self_attn.k_proj.bias": "blk.{i}.attn_k.bias",
    "model.layers.{i}.self_attn.v_proj.bias": "blk.{i}.attn_v.bias",
    "model.layers.{i}.self_attn.q_norm.weight": "blk.{i}.attn_q_norm.weight",
    "model.layers.{i}.self_attn.k_norm.weight": "blk.{i}.attn_k_norm.weight",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
    # phi3's fused projections, split by rows once the config is known (checkpoint.FUSED)
    "model.layers.{i}.self_attn.qkv_proj.weight": "blk.{i}.attn_qkv.weight",
    "model.layers.{i}.mlp.gate_up_proj.weight": "blk.{i}.ffn_gate_up.weight",
}
# Gemma 3 names its norms its own way: input_layernorm / pre_feedforward_layernorm are the pre-norms of attention and
# MLP, post_attention_layernorm / post_feedforward_layernorm the post-norms (llama's post_attention_layernorm is its
# MLP pre-norm)
_GEMMA3_NAMES = _NAMES | {
    "model.layers.{i}.pre_feedforward_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.post_attention_norm.weight",
    "model.layers.{i}.post_feedforward_layernorm.weight": "blk.{i}.post_ffw_norm.weight",
}
# Gemma 3's RMSNorm multiplies by (1 + w): these weights are stored as f32(1 + f32(w)), so engines run the plain norm
GEMMA3_NORMS = ("attn_norm.weight", "ffn_norm.weight", "post_attention_norm.weight", "post_ffw_norm.weight",
                "attn_q_norm.weight", "attn_k_norm.weight", "output_norm.weight")
_LAYER = re.compile(r"\.layers\.(\d+)\.")
SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "phi3", "gemma3_text")


def source_name(folder: Path) -> str:
    return folder.resolve().name


def canonical_name(hf_name: str, model_type: str | None = None) -> str | None:
    m = _LAYER.search(hf_name)
    key = _LAYER.sub(".layers.{i}.", hf_name) if m else hf_name
    target = (_GEMMA3_NAMES if model_type == "gemma3_text" else _NAMES).get(key)
    return target.format(i=m.group(1)) if target and m else target


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}; the checkpoint folder is damaged") from e
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a JSON object; the checkpoint folder is damaged")
    return data


def _safetensors_tensors(path: Path, model_type: str | None = None) -> list[SourceTensor]:
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not a readable safetensors file ({e}); download it again") from e
    base = 8 + n
    size = path.stat().st_size
    out = []
    for hf_name, info in header.items():
        if hf_name == "__metadata__":
            continue
        name = canonical_name(hf_name, model_type)
        if name is None:
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue  # a cache some old checkpoints saved; RoPE frequencies come from the config
            raise UnsupportedError(f"{path.name} has tensor {hf_name}, which Llama/Qwen2/Qwen3/Phi-3/Gemma 3 do not "
                                   "use; this variant is not supported")
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise UnsupportedError(f"tensor {hf_name} has dtype {dtype} (supported: {', '.join(_DTYPES)})")
        begin, end = info["data_offsets"]
        shape = tuple(int(s) for s in info["shape"])
        if base + end > size or end - begin != int(np.prod(shape)) * np.dtype(_DTYPES[dtype]).itemsize:
            raise InputError(f"{path} is truncated or corrupt at tensor {hf_name}; download it again")
        load = _loader(path, base + begin, shape, dtype)
        if model_type == "gemma3_text" and name.endswith(GEMMA3_NORMS):
            load = _plus_one(load)
        out.append(SourceTensor(name, shape, dtype, load))
    return out


def _plus_one(load: Any) -> Any:
    """Gemma's norm weight w as the 1 + w its RMSNorm multiplies by (transformers: 1.0 + w.float(), in f32)."""
    def plus_one() -> npt.NDArray[np.float32]:
        return np.float32(1) + load()

    return plus_one


def _loader(path: Path, offset: int, shape: tuple[int, ...], dtype: str) -> Any:
    def load() -> npt.NDArray[np.float32]:
        raw = np.memmap(path, dtype=_DTYPES[dtype], mode="r", offset=offset, shape=shape)
        if dtype == "BF16":  # bfloat16 is the top half of a float32
            return (raw.astype(np.uint32) << np.uint32(16)).view(np.float32)
        return np.asarray(raw, dtype=np.float32)

    return load


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(_read_json(index).get("weight_map", {}).values()))
        missing = [n for n in names if not (folder / n).exists()]
        if missing:
            raise InputError(f"{folder} lacks {missing[0]}, listed in model.safetensors.index.json; download it")
        return [folder / n for n in names]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise InputError(f"{folder} has no *.safetensors file; a Hugging Face checkpoint needs its weights "
                         "(pytorch .bin files are not read: convert them to safetensors)")
    return files


_SUPPORTED_ROPE_TYPES = ("default", "llama3", "longrope", "su")
# keys a rope_parameters / rope_scaling dict may hold besides the type's own parameters (rope.LLAMA3_KEYS,
# rope.LONGROPE_KEYS); partial_rotary_factor only as 1 (checked in _rope)
_ROPE_COMMON_KEYS = {"rope_type", "type", "rope_theta", "partial_rotary_factor"}


@dataclass(frozen=True)
class _Rope:
    theta: float
    freq_factors: tuple[float, ...] | None = None  # config.rope_freq_factors
    attn_factor: float | None = None  # config.rope_attn_factor
    original: int | None = None  # longrope: the original length, within which the short factors are exact
    long: bool = False  # longrope, long_context: the long factors taken (exact past the original length)


def _rope(cfg: dict[str, Any], head_dim: int, model_type: str, long_context: bool = False) -> _Rope:
    """The RoPE settings. transformers 5 moved them into "rope_parameters"; older configs have rope_theta and
    rope_scaling at the top level. ``long_context``: see _longrope."""
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    rope_type = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if rope_type not in _SUPPORTED_ROPE_TYPES or (rope_type in ("longrope", "su") and model_type != "phi3"):
        raise UnsupportedError(f"RoPE scaling {rope_type!r} is not supported for {model_type} (supported: default, "
                               "llama3; longrope / su for phi3)")
    partial = [float(d["partial_rotary_factor"]) for d in (cfg, params, scaling)
               if d.get("partial_rotary_factor") is not None]
    if any(f != 1.0 for f in partial):
        raise UnsupportedError(f"partial_rotary_factor {min(partial)} (RoPE on part of each head) is not supported")
    theta = float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    if rope_type == "default":
        return _Rope(theta)
    p = params if params.get("rope_type") == rope_type else scaling
    known = rope.LLAMA3_KEYS if rope_type == "llama3" else rope.LONGROPE_KEYS
    unknown = sorted(set(p) - _ROPE_COMMON_KEYS - set(known))
    if unknown:  # e.g. attention_factor on llama3: it changes the math
        raise UnsupportedError(f"{rope_type} RoPE scaling with {', '.join(unknown)} is not supported (supported "
                               f"keys: {', '.join(known)})")
    if rope_type == "llama3":
        missing = [k for k in rope.LLAMA3_KEYS if p.get(k) is None]
        if missing:
            raise InputError(f"config.json's llama3 RoPE scaling lacks {', '.join(missing)}; the checkpoint is "
                             "damaged")
        try:
            factors = rope.llama3_factors(theta, head_dim, float(p["factor"]), float(p["low_freq_factor"]),
                                          float(p["high_freq_factor"]), int(p["original_max_position_embeddings"]))
        except (TypeError, ValueError) as e:
            raise InputError(f"config.json's llama3 RoPE scaling is invalid: {e}") from e
        return _Rope(theta, tuple(factors))
    return _longrope(cfg, p, theta, head_dim, long_context)


def _longrope(cfg: dict[str, Any], p: dict[str, Any], theta: float, head_dim: int, long_context: bool) -> _Rope:
    """Phi-3's longrope ("su"), as transformers 5.23 computes it: divisors short_factor while the sequence is within
    original_max_position_embeddings (long_factor past it), and cos/sin times the attention factor in both regimes.
    Our engines build one RoPE table, so by default the package keeps the short factors and its context is capped at
    the original length, where transformers uses exactly these. With ``long_context`` (prepare --long-context) it
    keeps the long factors instead, for every position up to max_position_embeddings: what llama.cpp does with a
    context past the original length, and transformers for a sequence past it (not for one within it)."""
    try:
        short = tuple(float(v) for v in p["short_factor"])
        long = tuple(float(v) for v in p["long_factor"])
        max_pos = int(cfg.get("max_position_embeddings", 4096))
        # transformers' Phi3Config keeps a top-level original_max_position_embeddings (default 4096) and gives it
        # priority over the rope dict's
        original = int(cfg.get("original_max_position_embeddings") or p.get("original_max_position_embeddings")
                       or 4096)
        factor = None if p.get("factor") is None else float(p["factor"])
        given = None if p.get("attention_factor") is None else float(p["attention_factor"])
        attn = rope.longrope_attention_factor(max_pos, original, factor, given)
    except KeyError as e:
        raise InputError(f"config.json's longrope RoPE scaling lacks {e.args[0]}; the checkpoint is damaged") from e
    except (TypeError, ValueError) as e:
        raise InputError(f"config.json's longrope RoPE scaling is invalid: {e}") from e
    for name, values in (("short_factor", short), ("long_factor", long)):
        if len(values) != head_dim // 2:
            raise InputError(f"config.json's longrope {name} has {len(values)} values; head_dim {head_dim} needs "
                             f"{head_dim // 2}")
    if long_context and original < max_pos:
        return _Rope(theta, long, None if attn == 1.0 else attn, original, long=True)
    return _Rope(theta, short, None if attn == 1.0 else attn, original)


_GEMMA3_ROPE_KEYS = {"rope_type", "type", "rope_theta", "factor"}


def _gemma3_rope(cfg: dict[str, Any], head_dim: int) -> tuple[_Rope, float]:
    """(RoPE of the full-attention layers, RoPE base of the sliding ones), as transformers 5.23's Gemma3TextConfig
    reads them: rope_parameters per layer type ({"full_attention": {...}, "sliding_attention": {...}}), or (older
    configs) rope_theta + rope_scaling for the full layers and rope_local_base_freq for the sliding ones. Linear
    scaling of the full layers (Gemma 3 4B and up: factor 8) divides every frequency by its factor; anything else
    is refused."""
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and ("full_attention" in params or "sliding_attention" in params):
        full = dict(params.get("full_attention") or {})
        sliding = dict(params.get("sliding_attention") or {})
    elif params:
        raise InputError("config.json's rope_parameters for gemma3_text must be per layer type (full_attention, "
                         "sliding_attention); the checkpoint is damaged")
    else:
        full = dict(cfg.get("rope_scaling") or {})
        sliding = {"rope_type": "default"}
    full.setdefault("rope_theta", cfg.get("rope_theta", 1_000_000.0))
    sliding.setdefault("rope_theta", cfg.get("rope_local_base_freq", 10_000.0))
    for layer, p in (("full_attention", full), ("sliding_attention", sliding)):
        rope_type = p.get("rope_type") or p.get("type") or "default"
        allowed = ("default", "linear") if layer == "full_attention" else ("default",)
        if rope_type not in allowed:
            raise UnsupportedError(f"RoPE scaling {rope_type!r} on gemma3's {layer} layers is not supported "
                                   f"(supported: {', '.join(allowed)})")
        unknown = sorted(set(p) - _GEMMA3_ROPE_KEYS)
        if unknown:
            raise UnsupportedError(f"gemma3 RoPE parameters {', '.join(unknown)} ({layer}) are not supported")
    try:
        theta, theta_sliding = float(full["rope_theta"]), float(sliding["rope_theta"])
        factor = float(full.get("factor", 1.0)) if (full.get("rope_type") or full.get("type")) == "linear" else 1.0
    except (TypeError, ValueError) as e:
        raise InputError(f"config.json's gemma3 RoPE parameters are invalid: {e}") from e
    if not factor > 0:
        raise InputError(f"config.json's gemma3 linear RoPE factor {factor} is not positive")
    return _Rope(theta, None if factor == 1.0 else (factor,) * (head_dim // 2)), theta_sliding


def _gemma3(cfg: dict[str, Any], head_dim: int) -> tuple[_Rope, dict[str, Any]]:
    """The RoPE and the ModelConfig keys of a Gemma 3 text model (Gemma3ForCausalLM, transformers 5.23); what our
    engines do not compute (soft-capping, bidirectional attention, another activation) is refused."""
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        if cfg.get(key) is not None:
            raise UnsupportedError(f"gemma3 with {key} = {cfg[key]} (logit soft-capping) is not supported")
    if cfg.get("use_bidirectional_attention"):
        raise UnsupportedError("gemma3 with use_bidirectional_attention (an embedding model) is not supported")
    if cfg.get("attention_bias"):
        raise UnsupportedError("gemma3 with attention_bias true (q/k/v/o biases) is not supported")
    act = cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh"
    if act != "gelu_pytorch_tanh":
        raise UnsupportedError(f"gemma3 with hidden_activation {act!r} is not supported (supported: "
                               "gelu_pytorch_tanh)")
    layers = int(cfg["num_hidden_layers"])
    types = cfg.get("layer_types")
    if types is None:  # transformers' default: every sliding_window_pattern-th layer is full
        sliding = gemma3_sliding(layers, int(cfg.get("sliding_window_pattern", 6)))
    elif not isinstance(types, list) or len(types) != layers \
            or not set(types) <= {"sliding_attention", "full_attention"}:
        raise UnsupportedError(f"gemma3 layer_types {types!r} are not supported (one of sliding_attention, "
                               f"full_attention for each of the {layers} layers)")
    else:
        sliding = [t == "sliding_attention" for t in types]
    rp, theta_sliding = _gemma3_rope(cfg, head_dim)
    return rp, gemma3_config(int(cfg["hidden_size"]), float(cfg.get("query_pre_attn_scalar", 256)) ** -0.5,
                             int(cfg.get("sliding_window") or 4096), sliding, theta_sliding)


def _refuse_multimodal(cfg: dict[str, Any]) -> None:
    if cfg.get("model_type") == "gemma3":
        raise UnsupportedError("model_type 'gemma3' is the multimodal Gemma 3 (Gemma3ForConditionalGeneration, text "
                               "and vision); only Gemma 3 text models are supported (model_type gemma3_text, "
                               "Gemma3ForCausalLM: e.g. gemma-3-270m, gemma-3-1b)")


def _refuse_unsupported_attention(cfg: dict[str, Any], model_type: str) -> None:
    """Sliding-window attention (qwen2/qwen3 `use_sliding_window`, or any layer typed "sliding_attention") and qwen3's
    attention_bias (biases on q/k/v before the per-head norm, and on o) change the math: refused, never ignored."""
    if cfg.get("use_sliding_window") or "sliding_attention" in (cfg.get("layer_types") or []):
        raise UnsupportedError(f"{model_type} with sliding-window attention (use_sliding_window / layer_types) is "
                               "not supported")
    if model_type == "qwen3" and cfg.get("attention_bias"):
        raise UnsupportedError("qwen3 with attention_bias true (q/k/v/o biases) is not supported")


# what capped_context's notes call a config.json's lengths
_CONTEXT_NAMES = ContextNames("max_position_embeddings", "original_max_position_embeddings", "sliding_window",
                              "transformers")


def _context(cfg: dict[str, Any], model_type: str, rp: _Rope, notes: list[str], long_context: bool) -> int:
    """max_position_embeddings, capped where our engines would differ from transformers past a length: longrope's
    original length (transformers switches to the long factors past it; not with --long-context) and phi3's
    sliding_window (transformers masks keys more than sliding_window - 1 positions back, on eager and sdpa alike).
    A llama config.json with sliding_window (a Mistral-style model labelled llama) is capped there too: transformers'
    LlamaModel ignores the key, the model may have been trained with the window; within it both agree. qwen2/qwen3
    use theirs only with use_sliding_window (refused). The cap is noted."""
    window = cfg.get("sliding_window") if model_type in ("phi3", "llama") else None
    return capped_context(
        int(cfg.get("max_position_embeddings", 2048)), notes, _CONTEXT_NAMES, long_context=long_context,
        original=rp.original, long=rp.long, window=None if window is None else int(window),
        window_why="sliding_window: past it transformers masks the oldest keys, which our engines do not"
        if model_type == "phi3" else "sliding_window, Mistral-style: past it such a model attends to the last "
        "sliding_window positions only, which our engines do not; transformers' llama ignores the key")


def _config(cfg: dict[str, Any], names: set[str], notes: list[str] | None = None,
            long_context: bool = False) -> ModelConfig:
    notes = [] if notes is None else notes
    model_type = cfg.get("model_type")
    _refuse_multimodal(cfg)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedError(f"model_type {model_type!r} is not supported (supported: "
                               f"{', '.join(SUPPORTED_MODEL_TYPES)}; SmolLM models are llama; Qwen3 MoE and "
                               "Phi-3-small (phi3small) are not)")
    gemma3 = model_type == "gemma3_text"
    if not gemma3:  # Gemma 3's sliding-window layers are implemented
        _refuse_unsupported_attention(cfg, model_type)
    try:
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        head_dim = int(cfg.get("head_dim") or hidden // heads)
        rp, gemma3_keys = _gemma3(cfg, head_dim) if gemma3 else (_rope(cfg, head_dim, model_type, long_context), {})
        tied = "output.weight" not in names  # an lm_head that is present is used, tied or not
        if tied and cfg.get("tie_word_embeddings") is False:
            raise InputError("config.json says tie_word_embeddings is false but there is no lm_head.weight; "
                             "the checkpoint is incomplete")
        return ModelConfig(
            architecture="gemma3" if gemma3 else model_type,
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(cfg["intermediate_size"]),
            num_layers=int(cfg["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=head_dim,
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=rp.theta,
            rope_layout=fmt.ROPE_HALF,
            context_length=_context(cfg, model_type, rp, notes, long_context),
            tie_word_embeddings=tied,
            attention_bias="blk.0.attn_q.bias" in names,
            rope_freq_factors=rp.freq_factors,
            qk_norm=model_type in ("qwen3", "gemma3_text"),
            rope_attn_factor=rp.attn_factor,
            **gemma3_keys,
        )
    except KeyError as e:
        raise InputError(f"config.json lacks {e.args[0]}; the checkpoint folder is damaged") from e
    except ValueError as e:
        raise InputError(f"config.json is inconsistent: {e}") from e


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, list) else [value])]


def _with_end_texts(ids: list[int], tokenizer_json: str) -> list[int]:
    """``ids``, then every token of tokenizer.json whose text is one of llama.cpp's end texts (gguf_source.END_TEXTS,
    the list GGUF sources use), in id order, but the tokenizer's unknown token: the end ids of a folder without
    generation_config.json, whose config.json names one eos only (Phi-3's <|endoftext|>, not its turn end <|end|>)."""
    from .gguf_source import END_TEXTS

    try:
        data = json.loads(tokenizer_json)
        model = data.get("model") or {}
        vocab = model.get("vocab") or {}
        # BPE / WordPiece / WordLevel: {text: id}; Unigram: [[text, score], ...] in id order; added tokens win
        by_text = dict(vocab) if isinstance(vocab, dict) else {str(v[0]): i for i, v in enumerate(vocab)}
        by_text.update({str(t["content"]): int(t["id"]) for t in data.get("added_tokens") or []})
        unk = model.get("unk_token")
        unknown = by_text.get(unk) if isinstance(unk, str) else model.get("unk_id")
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, IndexError) as e:
        raise InputError(f"tokenizer.json is not a tokenizer ({type(e).__name__}: {e}); the checkpoint folder is "
                         "damaged") from e
    ends = {int(by_text[t]) for t in END_TEXTS if t in by_text}
    return ids + sorted(ends - set(ids) - {unknown})


_OPTIONAL_FILES = ("tokenizer_config.json", "generation_config.json", "chat_template.jinja")


def source_files(folder: Path) -> list[Path]:
    """Every file a checkpoint folder is read from (their bytes key the cache); raises if a required one is missing."""
    for required in ("config.json", "tokenizer.json"):
        if not (folder / required).is_file():
            raise InputError(f"{folder} lacks {required}; a Hugging Face checkpoint folder needs config.json, "
                             "tokenizer.json and *.safetensors")
    return [folder / "config.json", folder / "tokenizer.json", *_weight_files(folder)] + [
        folder / n for n in _OPTIONAL_FILES if (folder / n).exists()]


def read_hf_folder(folder: Path, long_context: bool = False) -> Checkpoint:
    files = source_files(folder)
    cfg = _read_json(folder / "config.json")
    _refuse_multimodal(cfg)  # before its tensors, whose names would be refused first
    weight_files = [f for f in files if f.suffix == ".safetensors"]
    tensors = [t for path in weight_files for t in _safetensors_tensors(path, cfg.get("model_type"))]
    notes: list[str] = []
    config = _config(cfg, {t.name for t in tensors}, notes, long_context)
    tensors = split_fused(tensors, config)
    tok_cfg = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").exists() else {}
    gen_cfg = _read_json(folder / "generation_config.json") if (folder / "generation_config.json").exists() else {}
    template = tok_cfg.get("chat_template")
    if (folder / "chat_template.jinja").exists():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if isinstance(template, list):  # several named templates: take the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    if not template:
        from .gguf_source import FALLBACK_CHAT_TEMPLATE

        template = FALLBACK_CHAT_TEMPLATE
        notes.append("the checkpoint has no chat template; using plain ChatML")
    eos = _ids(gen_cfg.get("eos_token_id", cfg.get("eos_token_id")))
    if not eos:
        raise InputError(f"{folder} names no eos_token_id in config.json or generation_config.json; add it")
    tokenizer_json = (folder / "tokenizer.json").read_text(encoding="utf-8")
    if not (folder / "generation_config.json").exists():  # its list is taken as it is; config.json's gets the rest
        eos = _with_end_texts(eos, tokenizer_json)
    bos = _ids(gen_cfg.get("bos_token_id", cfg.get("bos_token_id")))
    generation: dict[str, Any] = {
        "bos_token_id": bos[0] if bos else None,
        "eos_token_ids": eos,
        "add_bos_token": bool(tok_cfg.get("add_bos_token", False)),
    }
    if gen_cfg.get("do_sample"):
        for key in ("temperature", "top_p"):
            if key in gen_cfg:
                generation[key] = float(gen_cfg[key])
    ckpt = Checkpoint(
        kind="hf",
        name=source_name(folder),
        config=config,
        tokenizer_json=tokenizer_json,
        chat_template=str(template),
        generation=generation,
        tensors=tensors,
        files=files,
        notes=notes,
    )
    ckpt.check_tensors()
    return ckpt
