"""Read a GGUF checkpoint (llama, qwen2, qwen3, phi3): container parsed by gguf_file.py, values dequantized by the
`gguf` package (llama.cpp's own code)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt
from gguf import GGMLQuantizationType as QT

from . import format as fmt
from . import kquants, quant, rope
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
from .gguf_file import GGUFFile, TensorInfo, read_gguf_file
from .gguf_tokenizer import tokenizer_json_from_gguf

# Tensor types we read. Q4_0/Q4_1/Q8_0, Q5_0 and the K-quants Q4_K/Q5_K/Q6_K are carried over as they are (K-quants in
# format version 5's q4k/q5k/q6k; prepare --requantize re-quantizes Q5_0 and the K-quants instead); the others are
# dequantized by gguf and re-quantized. Each one is covered by tests/test_gguf_source.py.
SUPPORTED_TYPES = (QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1,
                   QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K)
_Repack = Callable[[npt.NDArray[np.uint8], int, quant.Planes | None], quant.Planes]


def _kquant(ggml_type: str) -> _Repack:
    """kquants.pack as a repack function: raw u8[rows, row bytes], cols, planes to write into or None."""
    def repack(raw: npt.NDArray[np.uint8], cols: int, out: quant.Planes | None) -> quant.Planes:
        planes = kquants.pack(ggml_type, raw, raw.shape[0], cols)
        if out is None:
            return planes
        for name, plane in planes.items():
            np.copyto(out[name], plane)
        return out
    return repack


_CARRY: dict[QT, tuple[str, _Repack]] = {
    QT.Q4_0: (fmt.Q4, quant.from_gguf_q4_0),
    QT.Q4_1: (fmt.Q4, quant.from_gguf_q4_1),
    QT.Q8_0: (fmt.Q8, quant.from_gguf_q8_0),
    **{QT[t]: (storage, _kquant(t)) for t, storage in kquants.STORAGE.items()},  # Q4_K, Q5_K, Q6_K, Q5_0
}
# llama.cpp's converter permutes llama's Q/K rows so that RoPE rotates adjacent pairs; qwen2 and qwen3 keep
# rotate-half (convert_hf_to_gguf's Qwen3Model is its Qwen2Model: no permutation; llama.cpp ropes both NEOX-style).
# phi3 too (convert_hf_to_gguf's Phi3MiniModel permutes nothing; llama.cpp ropes phi3 NEOX-style).
# gemma3 too (convert_hf_to_gguf's Gemma3Model permutes nothing; llama.cpp ropes gemma3 NEOX-style).
_ROPE_LAYOUT = {"llama": fmt.ROPE_INTERLEAVED, "qwen2": fmt.ROPE_HALF, "qwen3": fmt.ROPE_HALF, "phi3": fmt.ROPE_HALF,
                "gemma3": fmt.ROPE_HALF}

# A plain ChatML template for checkpoints that carry none (noted in the plan).
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _open(path: Path) -> GGUFFile:
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    if magic != b"GGUF":
        raise InputError(f"{path} is not a GGUF file (it does not start with 'GGUF'); give a .gguf file or a "
                         "Hugging Face folder")
    try:
        return read_gguf_file(path)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    except Exception as e:  # GGUFFormatError, struct.error (read past the end), UnicodeDecodeError...
        raise InputError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); download it again") from e


def _need(meta: dict[str, Any], key: str) -> Any:
    if key not in meta:
        raise InputError(f"GGUF metadata lacks {key}; the file is incomplete or not a supported model")
    return meta[key]


ROPE_FREQS = "rope_freqs.weight"  # llama.cpp's per-frequency RoPE divisors (Llama 3.x "llama3" scaling)
# phi3's longrope divisors (convert_hf_to_gguf's Phi3MiniModel writes rope_scaling's long_factor / short_factor)
ROPE_LONG, ROPE_SHORT = "rope_factors_long.weight", "rope_factors_short.weight"
ROPE_TENSORS = (ROPE_FREQS, ROPE_LONG, ROPE_SHORT)


def _factors(gf: GGUFFile, name: str, head_dim: int) -> tuple[float, ...] | None:
    t = next((t for t in gf.tensors if t.name == name), None)
    if t is None:
        return None
    if tuple(t.dims) != (head_dim // 2,) or QT(t.ggml_type) not in (QT.F32, QT.F16):
        raise UnsupportedError(f"tensor {name} has shape {list(t.dims)} and type {QT(t.ggml_type).name}; "
                               f"expected [{head_dim // 2}] (head_dim / 2) of F32 or F16")
    values = np.asarray(gguf.quants.dequantize(t.data, QT(t.ggml_type)), dtype=np.float32).reshape(-1)
    return tuple(float(v) for v in values)


def _rope_freq_factors(arch: str, gf: GGUFFile, head_dim: int,
                       long_factors: bool = False) -> tuple[float, ...] | None:
    """The divisors of ``rope_freqs.weight`` (llama only, as llama.cpp reads it), or phi3's short longrope factors
    (``rope_factors_short.weight``; ``rope_factors_long.weight`` with ``long_factors``: see _long_context), or None
    where there are none."""
    names = {t.name for t in gf.tensors}
    if ROPE_FREQS in names and arch != "llama":
        raise UnsupportedError(f"tensor {ROPE_FREQS} in a {arch} GGUF is not supported (only llama files use it)")
    for name in (ROPE_LONG, ROPE_SHORT):
        if name in names and arch != "phi3":
            raise UnsupportedError(f"tensor {name} in a {arch} GGUF is not supported (only phi3 files use it)")
    if (ROPE_LONG in names) != (ROPE_SHORT in names):
        raise InputError(f"the GGUF has only one of {ROPE_LONG} and {ROPE_SHORT}; the file is incomplete")
    if arch == "phi3":
        long, short = _factors(gf, ROPE_LONG, head_dim), _factors(gf, ROPE_SHORT, head_dim)  # both checked
        return long if long_factors else short
    return _factors(gf, ROPE_FREQS, head_dim)


def _long_context(meta: dict[str, Any], arch: str, context: int) -> bool:
    """Whether prepare --long-context takes phi3's long factors: a context past rope.scaling.original_context_length
    (where it is not, llama.cpp uses the short factors whatever context it runs)."""
    key = f"{arch}.rope.scaling.original_context_length"
    return arch == "phi3" and key in meta and int(meta[key]) < context


def _longrope(meta: dict[str, Any], arch: str, longrope: bool, context: int) -> tuple[float | None, int | None]:
    """(rope_attn_factor or None, rope.scaling.original_context_length or None) of a phi3 file, as transformers
    computes them from the config the file was converted from: cos and sin times rope.scaling.attn_factor (llama.cpp's
    converter writes transformers' attention factor; where absent, computed as transformers does); the short factors
    are exact within the original length (checkpoint.capped_context caps the context there unless --long-context
    took the long factors: _long_context). Other architectures: no attention factor (a value other than 1 is
    refused), no original length."""
    key = f"{arch}.rope.scaling.attn_factor"
    if not longrope:
        if float(meta.get(key, 1.0)) != 1.0:
            raise UnsupportedError(f"GGUF metadata {key} = {meta[key]} without longrope factors is not supported")
        return None, None
    original = int(_need(meta, f"{arch}.rope.scaling.original_context_length"))
    attn = float(meta[key]) if key in meta else rope.longrope_attention_factor(context, original)
    return (None if attn == 1.0 else attn), original


# what capped_context's notes call a GGUF's lengths
_CONTEXT_NAMES = ContextNames("context_length", "rope.scaling.original_context_length", "attention.sliding_window",
                              "llama.cpp")


def _gemma3(meta: dict[str, Any], layers: int, hidden: int, heads: int, head_dim: int) -> dict[str, Any]:
    """The Gemma 3 ModelConfig keys of a gemma3 GGUF, as llama.cpp (llama-model.cpp, gemma3) reads the file: sliding
    window attention.sliding_window (required); layer il is full iff il % 6 == 5 (attention.sliding_window_pattern
    where the file has one: a period, or one flag per layer, true = sliding); sliding layers rope with base 10000
    (rope.freq_base_swa where the file has it) and no scaling; attention scale 1/sqrt(head_dim), but
    1/sqrt(hidden / heads) for the 27B (62 layers), as llama.cpp; the norms are stored as 1 + w by llama.cpp's
    converter already. Soft-capping is refused."""
    for key in ("gemma3.final_logit_softcapping", "gemma3.attn_logit_softcapping"):
        if float(meta.get(key) or 0.0) != 0.0:
            raise UnsupportedError(f"GGUF metadata {key} = {meta[key]} (logit soft-capping) is not supported")
    window = int(_need(meta, "gemma3.attention.sliding_window"))
    pattern = meta.get("gemma3.attention.sliding_window_pattern", 6)
    if isinstance(pattern, list):
        if len(pattern) != layers:
            raise InputError(f"GGUF metadata gemma3.attention.sliding_window_pattern has {len(pattern)} flags for "
                             f"{layers} layers; the file is inconsistent")
        sliding = [bool(p) for p in pattern]
    elif isinstance(pattern, int) and pattern > 0:
        sliding = gemma3_sliding(layers, pattern)
    else:
        raise InputError(f"GGUF metadata gemma3.attention.sliding_window_pattern = {pattern!r} is not a positive "
                         "period or a list of flags")
    scale_dim = hidden // heads if layers == 62 else head_dim  # llama.cpp: the 27B scales by hidden / heads
    return gemma3_config(hidden, float(np.float32(1) / np.sqrt(np.float32(scale_dim))), window, sliding,
                         float(meta.get("gemma3.rope.freq_base_swa", 10000.0)))


def _config(meta: dict[str, Any], gf: GGUFFile, notes: list[str] | None = None,
            long_context: bool = False) -> ModelConfig:
    notes = [] if notes is None else notes
    arch = _need(meta, "general.architecture")
    if arch not in fmt.ARCHITECTURES:
        raise UnsupportedError(f"architecture {arch!r} is not supported (supported: {', '.join(fmt.ARCHITECTURES)})")
    scaling = meta.get(f"{arch}.rope.scaling.type", "none")
    # gemma3: linear scaling of the full-attention layers (Gemma 3 4B and up), every frequency divided by the factor
    linear = float(meta.get(f"{arch}.rope.scaling.factor", 1.0)) if arch == "gemma3" and scaling == "linear" else None
    if linear is not None:
        if not linear > 0:
            raise InputError(f"GGUF metadata {arch}.rope.scaling.factor = {linear} is not positive")
    elif scaling not in ("none", ""):
        raise UnsupportedError(f"RoPE scaling {scaling!r} is not supported (supported: none; Llama 3.x's llama3 "
                               f"scaling comes as tensor {ROPE_FREQS})")
    for key in (f"{arch}.rope.scaling.factor", f"{arch}.rope.scale_linear"):  # llama.cpp: linear scaling by default
        if float(meta.get(key, 1.0)) not in (0.0, 1.0) and not (linear is not None and key.endswith("factor")):
            raise UnsupportedError(f"GGUF metadata {key} = {meta[key]} (linear RoPE scaling) is not supported")
    hidden = int(_need(meta, f"{arch}.embedding_length"))
    heads = int(_need(meta, f"{arch}.attention.head_count"))
    names = {t.name for t in gf.tensors}
    embd = next((t for t in gf.tensors if t.name == "token_embd.weight"), None)
    if embd is None:
        raise InputError("GGUF file lacks tensor token_embd.weight; the file is incomplete")
    vocab = int(meta.get(f"{arch}.vocab_size", int(embd.dims[1]) if len(embd.dims) > 1 else 0))
    head_dim = int(meta.get(f"{arch}.attention.key_length", hidden // heads))  # as llama.cpp's n_embd_head_k
    value_dim = int(meta.get(f"{arch}.attention.value_length", head_dim))
    if value_dim != head_dim:
        raise UnsupportedError(f"GGUF metadata {arch}.attention.value_length = {value_dim} differs from key_length "
                               f"{head_dim}; value heads of another size are not supported")
    if arch == "qwen3" and "blk.0.attn_q.bias" in names:
        raise UnsupportedError("a qwen3 GGUF with q/k/v biases is not supported (Qwen3 has none; they would come "
                               "before the per-head q/k norm)")
    context = int(_need(meta, f"{arch}.context_length"))
    long = long_context and _long_context(meta, arch, context) and ROPE_LONG in names
    freq_factors = _rope_freq_factors(arch, gf, head_dim, long)
    attn_factor, original = _longrope(meta, arch, arch == "phi3" and freq_factors is not None, context)
    gemma3 = _gemma3(meta, int(_need(meta, f"{arch}.block_count")), hidden, heads, head_dim) if arch == "gemma3" \
        else {}
    if linear is not None and linear != 1.0:
        freq_factors = (linear,) * (head_dim // 2)
    window = int(meta.get(f"{arch}.attention.sliding_window") or 0) if arch != "gemma3" else 0
    if window and arch != "phi3":
        raise UnsupportedError(f"GGUF metadata {arch}.attention.sliding_window (sliding-window attention) is not "
                               "supported")
    # phi3's window: within it no key is masked, so the package's context stops there
    context = capped_context(context, notes, _CONTEXT_NAMES, long_context=long_context, original=original, long=long,
                             window=window if window > 0 else None,
                             window_why="attention.sliding_window: past it the oldest keys are masked, which our "
                                        "engines do not")
    rotated = int(meta.get(f"{arch}.rope.dimension_count", head_dim))
    if rotated != head_dim:
        raise UnsupportedError(f"GGUF metadata {arch}.rope.dimension_count = {rotated} rotates part of each head "
                               f"(head_dim {head_dim}); partial RoPE is not supported")
    try:
        return ModelConfig(
            architecture=arch,
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=int(_need(meta, f"{arch}.feed_forward_length")),
            num_layers=int(_need(meta, f"{arch}.block_count")),
            num_heads=heads,
            num_kv_heads=int(meta.get(f"{arch}.attention.head_count_kv", heads)),
            head_dim=head_dim,
            rms_norm_eps=float(_need(meta, f"{arch}.attention.layer_norm_rms_epsilon")),
            rope_theta=float(meta.get(f"{arch}.rope.freq_base", 10000.0)),
            rope_layout=_ROPE_LAYOUT[arch],
            context_length=context,
            tie_word_embeddings="output.weight" not in names,
            attention_bias="blk.0.attn_q.bias" in names,
            rope_freq_factors=freq_factors,
            qk_norm=arch in ("qwen3", "gemma3"),
            rope_attn_factor=attn_factor,
            **gemma3,
        )
    except ValueError as e:
        raise InputError(f"GGUF metadata is inconsistent: {e}") from e


def _tensor(t: TensorInfo, name: str | None = None, rows: tuple[int, int] | None = None) -> SourceTensor:
    """Tensor ``t`` (or rows [start, stop) of it, named ``name``: a part of a fused tensor; GGUF blocks run along
    rows, so the part is carried as exactly as the whole)."""
    qtype = QT(t.ggml_type)
    if qtype not in SUPPORTED_TYPES:
        raise UnsupportedError(f"tensor {t.name} has type {qtype.name}, which is not supported (supported: "
                               f"{', '.join(q.name for q in SUPPORTED_TYPES)})")
    shape = tuple(reversed(t.dims))  # GGUF [ne0, ne1] -> numpy (ne1, ne0) = (rows, cols)
    data = t.data
    if rows is not None:
        data = np.asarray(data).reshape(shape[0], -1)[rows[0]:rows[1]]
        shape = (rows[1] - rows[0], *shape[1:])

    def load_f32() -> npt.NDArray[np.float32]:
        return np.asarray(gguf.quants.dequantize(data, qtype), dtype=np.float32).reshape(shape)

    carry_storage = _CARRY[qtype][0] if qtype in _CARRY and len(shape) == 2 else None

    def carry() -> tuple[str, quant.Planes] | None:
        if carry_storage is None:
            return None
        storage, repack = _CARRY[qtype]
        return storage, repack(np.asarray(data).reshape(shape[0], -1), shape[1], None)

    def carry_into(out: quant.Planes) -> None:
        _CARRY[qtype][1](np.asarray(data).reshape(shape[0], -1), shape[1], out)

    return SourceTensor(name or t.name, shape, qtype.name, load_f32, carry, carry_storage,
                        carry_into if carry_storage is not None else None)


# llama.cpp's end-of-generation token texts (llama-vocab.cpp): a token with one of these texts ends generation there
# (GGUF sources, and Hugging Face folders without generation_config.json: hf_source._with_end_texts)
END_TEXTS = ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>",
             "<|end_of_text|>", "<EOT>")


def end_token_ids(meta: dict[str, Any]) -> list[int]:
    """Every id that ends generation, as llama.cpp's end-of-generation set: eos, then eot and eom where named, then
    every token whose text is one of END_TEXTS, in id order (Qwen2's <|endoftext|>, named only as bos and padding;
    Llama 3's <|end_of_text|> and <|eom_id|> beside the eos <|eot_id|>). One difference: the token the file names as
    unknown is left out (SmolLM2's <|endoftext|>, which its own generation_config does not list as an end). The first
    id is the main one (the chat template's eos_token)."""
    ids = [int(_need(meta, "tokenizer.ggml.eos_token_id"))]
    for key in ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"):
        if meta.get(key) is not None and int(meta[key]) not in ids:
            ids.append(int(meta[key]))
    unknown = meta.get("tokenizer.ggml.unknown_token_id")
    ends = set(END_TEXTS)
    for i, text in enumerate(meta.get("tokenizer.ggml.tokens") or []):
        if text in ends and i not in ids and i != unknown:
            ids.append(i)
    return ids


def _fused_name(config: ModelConfig, t: TensorInfo) -> str | None:
    """phi3's ffn_up of 2 * intermediate rows holds gate and up: named blk.N.ffn_gate_up.weight for split_fused."""
    if config.architecture == "phi3" and t.name.endswith(".ffn_up.weight") and len(t.dims) == 2 \
            and int(t.dims[1]) == 2 * config.intermediate_size:
        return t.name.removesuffix("ffn_up.weight") + "ffn_gate_up.weight"
    return None


def _gguf_name(name: str) -> str:
    return name.removesuffix("ffn_gate_up.weight") + "ffn_up.weight" if name.endswith("ffn_gate_up.weight") else name


def source_name(path: Path) -> str:
    return path.name.removesuffix(".gguf")


def read_gguf(path: Path, long_context: bool = False) -> Checkpoint:
    """``long_context``: phi3's long longrope factors over the whole context_length (prepare --long-context)."""
    gf = _open(path)
    meta = gf.metadata
    notes: list[str] = []
    config = _config(meta, gf, notes, long_context)
    # rope_freqs.weight / rope_factors_short.weight (rope_factors_long.weight with long_context) went into the config
    # (config.rope_freq_factors); every other tensor must be a weight. phi3's fused attn_qkv and ffn_up (gate and up:
    # 2 * intermediate rows) are split
    infos = {t.name: t for t in gf.tensors if t.name not in ROPE_TENSORS}
    tensors = [_tensor(t, _fused_name(config, t)) for t in infos.values()]
    tensors = split_fused(tensors, config, lambda t, name, start, stop: _tensor(infos[_gguf_name(t.name)], name,
                                                                              (start, stop)))
    generation = {
        "bos_token_id": int(meta["tokenizer.ggml.bos_token_id"]) if "tokenizer.ggml.bos_token_id" in meta else None,
        "eos_token_ids": end_token_ids(meta),
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
    }
    template = meta.get("tokenizer.chat_template")
    if not template:
        # engines encode the rendered chat without special tokens, so a BOS the file asks for is written by the
        # template (gemma-3-270m, a base model without a template, answers garbage without its <bos>)
        bos = generation["add_bos_token"] and generation["bos_token_id"] is not None
        template = ("{{ bos_token }}" if bos else "") + FALLBACK_CHAT_TEMPLATE
        notes.append("the GGUF has no chat template; using plain ChatML" + (" after BOS" if bos else ""))
    ckpt = Checkpoint(
        kind="gguf",
        name=source_name(path),
        config=config,
        # built when first needed and loaded back by the packer (Checkpoint.tokenizer_text, check_tokenizer)
        tokenizer_json=lambda: tokenizer_json_from_gguf(meta, load_check=False),
        chat_template=str(template),
        generation=generation,
        tensors=tensors,
        files=[path],
        notes=notes,
    )
    ckpt.check_tensors()
    return ckpt
