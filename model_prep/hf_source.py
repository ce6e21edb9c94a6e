"""Read a Hugging Face checkpoint folder (config.json + *.safetensors + tokenizer.json): Llama, Qwen2, Qwen3 (dense),
SmolLM."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import format as fmt
from . import rope
from .checkpoint import Checkpoint, SourceTensor
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
}
_LAYER = re.compile(r"\.layers\.(\d+)\.")
SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3")


def source_name(folder: Path) -> str:
    return folder.resolve().name


def canonical_name(hf_name: str) -> str | None:
    m = _LAYER.search(hf_name)
    key = _LAYER.sub(".layers.{i}.", hf_name) if m else hf_name
    target = _NAMES.get(key)
    return target.format(i=m.group(1)) if target and m else target


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}; the checkpoint folder is damaged") from e
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a JSON object; the checkpoint folder is damaged")
    return data


def _safetensors_tensors(path: Path) -> list[SourceTensor]:
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
        name = canonical_name(hf_name)
        if name is None:
            if hf_name.endswith("rotary_emb.inv_freq"):
                continue  # a cache some old checkpoints saved; RoPE frequencies come from the config
            raise UnsupportedError(f"{path.name} has tensor {hf_name}, which Llama/Qwen2/Qwen3 do not use; this "
                                   "variant is not supported")
        dtype = info["dtype"]
        if dtype not in _DTYPES:
            raise UnsupportedError(f"tensor {hf_name} has dtype {dtype} (supported: {', '.join(_DTYPES)})")
        begin, end = info["data_offsets"]
        shape = tuple(int(s) for s in info["shape"])
        if base + end > size or end - begin != int(np.prod(shape)) * np.dtype(_DTYPES[dtype]).itemsize:
            raise InputError(f"{path} is truncated or corrupt at tensor {hf_name}; download it again")
        out.append(SourceTensor(name, shape, dtype, _loader(path, base + begin, shape, dtype)))
    return out


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


_SUPPORTED_ROPE_TYPES = ("default", "llama3")
# keys a rope_parameters / rope_scaling dict may hold besides the type's own parameters (rope.LLAMA3_KEYS)
_ROPE_COMMON_KEYS = {"rope_type", "type", "rope_theta"}


def _rope(cfg: dict[str, Any], head_dim: int) -> tuple[float, tuple[float, ...] | None]:
    """(rope_theta, rope_freq_factors or None). transformers 5 moved the rope settings into "rope_parameters";
    older configs have rope_theta and rope_scaling at the top level."""
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    rope_type = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    if rope_type not in _SUPPORTED_ROPE_TYPES:
        raise UnsupportedError(f"RoPE scaling {rope_type!r} is not supported (supported: "
                               f"{', '.join(_SUPPORTED_ROPE_TYPES)})")
    theta = float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    if rope_type == "default":
        return theta, None
    p = params if params.get("rope_type") == "llama3" else scaling
    unknown = sorted(set(p) - _ROPE_COMMON_KEYS - set(rope.LLAMA3_KEYS))
    if unknown:  # e.g. partial_rotary_factor or attention_factor: they change the math
        raise UnsupportedError(f"llama3 RoPE scaling with {', '.join(unknown)} is not supported (supported keys: "
                               f"{', '.join(rope.LLAMA3_KEYS)})")
    missing = [k for k in rope.LLAMA3_KEYS if p.get(k) is None]
    if missing:
        raise InputError(f"config.json's llama3 RoPE scaling lacks {', '.join(missing)}; the checkpoint is damaged")
    try:
        factors = rope.llama3_factors(theta, head_dim, float(p["factor"]), float(p["low_freq_factor"]),
                                      float(p["high_freq_factor"]), int(p["original_max_position_embeddings"]))
    except (TypeError, ValueError) as e:
        raise InputError(f"config.json's llama3 RoPE scaling is invalid: {e}") from e
    return theta, tuple(factors)


def _refuse_unsupported_attention(cfg: dict[str, Any], model_type: str) -> None:
    """Sliding-window attention (qwen2/qwen3 `use_sliding_window`, or any layer typed "sliding_attention") and qwen3's
    attention_bias (biases on q/k/v before the per-head norm, and on o) change the math: refused, never ignored."""
    if cfg.get("use_sliding_window") or "sliding_attention" in (cfg.get("layer_types") or []):
        raise UnsupportedError(f"{model_type} with sliding-window attention (use_sliding_window / layer_types) is "
                               "not supported")
    if model_type == "qwen3" and cfg.get("attention_bias"):
        raise UnsupportedError("qwen3 with attention_bias true (q/k/v/o biases) is not supported")


def _config(cfg: dict[str, Any], names: set[str]) -> ModelConfig:
    model_type = cfg.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedError(f"model_type {model_type!r} is not supported (supported: "
                               f"{', '.join(SUPPORTED_MODEL_TYPES)}; SmolLM models are llama; Qwen3 MoE is not)")
    _refuse_unsupported_attention(cfg, model_type)
    try:
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        head_dim = int(cfg.get("head_dim") or hidden // heads)
        rope_theta, rope_freq_factors = _rope(cfg, head_dim)
        tied = "output.weight" not in names  # an lm_head that is present is used, tied or not
        if tied and cfg.get("tie_word_embeddings") is False:
            raise InputError("config.json says tie_word_embeddings is false but there is no lm_head.weight; "
                             "the checkpoint is incomplete")
        return ModelConfig(
            architecture=model_type,
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(cfg["intermediate_size"]),
            num_layers=int(cfg["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=head_dim,
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=rope_theta,
            rope_layout=fmt.ROPE_HALF,
            context_length=int(cfg.get("max_position_embeddings", 2048)),
            tie_word_embeddings=tied,
            attention_bias="blk.0.attn_q.bias" in names,
            rope_freq_factors=rope_freq_factors,
            qk_norm=model_type == "qwen3",
        )
    except KeyError as e:
        raise InputError(f"config.json lacks {e.args[0]}; the checkpoint folder is damaged") from e
    except ValueError as e:
        raise InputError(f"config.json is inconsistent: {e}") from e


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(v) for v in (value if isinstance(value, list) else [value])]


_OPTIONAL_FILES = ("tokenizer_config.json", "generation_config.json", "chat_template.jinja")


def source_files(folder: Path) -> list[Path]:
    """Every file a checkpoint folder is read from (their bytes key the cache); raises if a required one is missing."""
    for required in ("config.json", "tokenizer.json"):
        if not (folder / required).is_file():
            raise InputError(f"{folder} lacks {required}; a Hugging Face checkpoint folder needs config.json, "
                             "tokenizer.json and *.safetensors")
    return [folder / "config.json", folder / "tokenizer.json", *_weight_files(folder)] + [
        folder / n for n in _OPTIONAL_FILES if (folder / n).exists()]


def read_hf_folder(folder: Path) -> Checkpoint:
    files = source_files(folder)
    cfg = _read_json(folder / "config.json")
    weight_files = [f for f in files if f.suffix == ".safetensors"]
    tensors = [t for path in weight_files for t in _safetensors_tensors(path)]
    config = _config(cfg, {t.name for t in tensors})
    tok_cfg = _read_json(folder / "tokenizer_config.json") if (folder / "tokenizer_config.json").exists() else {}
    gen_cfg = _read_json(folder / "generation_config.json") if (folder / "generation_config.json").exists() else {}
    notes = []
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
        tokenizer_json=(folder / "tokenizer.json").read_text(encoding="utf-8"),
        chat_template=str(template),
        generation=generation,
        tensors=tensors,
        files=files,
        notes=notes,
    )
    ckpt.check_tensors()
    return ckpt
