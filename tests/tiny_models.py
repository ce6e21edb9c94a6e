"""Tiny checkpoints made inside the tests: random Llama/Qwen2/Qwen3/Phi-3 by `transformers`, and GGUF files of them.

The GGUF writer mirrors llama.cpp's converter (Q/K rows permuted for llama) so that our reader is tested against an
independent implementation's conventions, not our own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Phi-3's turn markers and template (microsoft/Phi-3.5-mini-instruct's, as its tokenizer_config.json has it)
PHI3_SPECIALS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
# longrope on head_dim 16 (8 factors each), a short original context (64) inside max_position_embeddings 256: the
# attention factor is sqrt(1 + ln(256 / 64) / ln(64)) = 1.1547, and the package's context is capped at 64
PHI3_ORIGINAL = 64
PHI3_LONGROPE = {"rope_type": "longrope", "rope_theta": 10000.0,
                 "short_factor": [1.0, 1.05, 1.2, 1.4, 1.9, 2.5, 3.3, 4.1],
                 "long_factor": [1.0, 1.5, 3.0, 6.0, 9.0, 14.0, 20.0, 30.0]}
_CORPUS = [
    "The pump bearing runs hot at 78 degrees; check the lube oil and the strainer.",
    "Patient: fever 39.4 C, heart rate 128 bpm, blood pressure 90/60 mmHg. Escalate now.",
    "Generator 2 tripped on overcurrent. Reset after inspection of the breaker and cabling.",
    "What is the capital of France? The capital of France is Paris.",
] * 20


def tiny_tokenizer(vocab_size: int = 384, specials: list[str] | None = None) -> Tokenizer:
    """A byte-level BPE trained on a few lines: every string encodes, ids are < vocab_size."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials or SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS, trainer)
    return tok


def _write_tokenizer_files(folder: Path, tok: Tokenizer) -> None:
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": CHATML, "eos_token": "<|im_end|>", "bos_token": None, "add_bos_token": False}))


def make_hf(folder: Path, arch: str = "llama", seed: int = 0, dtype: str = "float32", init_std: float = 0.1,
            layers: int = 2, hidden: int = 64, heads: int = 4, kv_heads: int = 2, intermediate: int = 128,
            rope_parameters: dict[str, Any] | None = None, head_dim: int | None = None,
            original: int = PHI3_ORIGINAL) -> Path:
    """A random Llama, Qwen2, Qwen3 or Phi-3 saved by transformers (safetensors), with a tokenizer and ChatML template
    (Phi-3: its own template and turn tokens, longrope ``rope_parameters`` by default: PHI3_LONGROPE, with
    ``original`` as original_max_position_embeddings).
    ``rope_parameters`` (llama): transformers 5's dict, e.g. {"rope_type": "llama3", "rope_theta": ...}.
    ``head_dim`` (qwen3): values per head; default hidden / heads for llama and qwen2, 2 * hidden / heads for qwen3
    (so that q has more rows than the hidden size, as in Qwen3-0.6B: 16 heads of 128 on a hidden size of 1024)."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    tok = tiny_tokenizer()
    _write_tokenizer_files(folder, tok)
    eos = tok.token_to_id("<|im_end|>")
    common: dict[str, Any] = dict(
        vocab_size=tok.get_vocab_size(), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=256, rms_norm_eps=1e-5, initializer_range=init_std, eos_token_id=eos,
        bos_token_id=tok.token_to_id("<|endoftext|>"))
    torch.manual_seed(seed)
    if arch == "phi3":  # fused qkv_proj / gate_up_proj, longrope (see PHI3_LONGROPE), untied, Phi-3's template
        return _make_phi3(folder, common, init_std, rope_parameters, original)
    if arch == "llama":
        rope: dict[str, Any] = {"rope_parameters": rope_parameters} if rope_parameters else {"rope_theta": 10000.0}
        cfg = transformers.LlamaConfig(**common, tie_word_embeddings=False, **rope)
        model = transformers.LlamaForCausalLM(cfg)
    elif arch == "qwen2":
        cfg = transformers.Qwen2Config(**common, tie_word_embeddings=True, rope_theta=1000000.0)
        model = transformers.Qwen2ForCausalLM(cfg)
    else:  # qwen3: per-head q/k RMSNorm, no biases, an explicit head_dim, tied embeddings (as the small ones)
        cfg = transformers.Qwen3Config(**common, tie_word_embeddings=True, head_dim=head_dim or 2 * hidden // heads,
                                       rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
        model = transformers.Qwen3ForCausalLM(cfg)
    _randomize(model, init_std)
    model = model.to(getattr(torch, dtype)).eval()
    model.save_pretrained(folder)
    return folder


def _randomize(model: Any, init_std: float) -> None:
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))  # not all ones, so a wrong norm weight shows
            elif name.endswith(".bias"):
                p.normal_(0, init_std)  # qwen2's q/k/v biases start at zero; make them matter


def _make_phi3(folder: Path, common: dict[str, Any], init_std: float, rope_parameters: dict[str, Any] | None,
               original: int, sliding_window: int | None = None) -> Path:
    import transformers

    tok = tiny_tokenizer(specials=SPECIALS + PHI3_SPECIALS)
    tok.save(str(folder / "tokenizer.json"))
    end, eot = tok.token_to_id("<|end|>"), tok.token_to_id("<|endoftext|>")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "chat_template": PHI3_TEMPLATE, "eos_token": "<|endoftext|>", "bos_token": None, "add_bos_token": False}))
    rope = PHI3_LONGROPE if rope_parameters is None else rope_parameters
    ids = {"eos_token_id": eot, "pad_token_id": eot, "bos_token_id": eot, "vocab_size": tok.get_vocab_size()}
    cfg = transformers.Phi3Config(**(common | ids), tie_word_embeddings=False,
                                  original_max_position_embeddings=original, rope_parameters=dict(rope),
                                  sliding_window=sliding_window)
    model = transformers.Phi3ForCausalLM(cfg)
    _randomize(model, init_std)
    model.eval().save_pretrained(folder)
    # as Phi-3.5-mini's generation_config.json: <|end|> first, then <|endoftext|>
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [end, eot], "bos_token_id": None}))
    return folder


# Gemma 3: 4 layers, two kinds (sliding with window 8, full), each with its own RoPE base, and a query_pre_attn_scalar
# that is not head_dim, so that a wrong window, base or scale shows in the logits of a 20-token prompt
GEMMA3_LAYER_TYPES = ["sliding_attention", "full_attention", "sliding_attention", "sliding_attention"]
GEMMA3_ROPE = {"full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
               "sliding_attention": {"rope_type": "default", "rope_theta": 100.0}}


def write_tiny_gemma3(folder: Path, seed: int = 0, layers: int = 4, hidden: int = 64, heads: int = 4,
                      kv_heads: int = 2, head_dim: int = 32, intermediate: int = 128, sliding_window: int = 8,
                      layer_types: list[str] | None = None, rope_parameters: dict[str, Any] | None = None,
                      query_pre_attn_scalar: int = 48, init_std: float = 0.05, **extra: Any) -> Path:
    """A random Gemma 3 text model (transformers' Gemma3ForCausalLM, Gemma3TextConfig) saved as an HF folder with the
    tiny byte-level tokenizer and ChatML: tied embeddings (scaled by sqrt(hidden) on lookup), pre- and post-norms,
    q/k norms (weights w near 0: the model multiplies by 1 + w), GeGLU, sliding/full layers (``layer_types``:
    default GEMMA3_LAYER_TYPES for 4 layers, else transformers' every-6th-full pattern), ``rope_parameters`` per layer
    type (default GEMMA3_ROPE). ``extra``: more Gemma3TextConfig arguments (e.g. final_logit_softcapping).
    llama.cpp's converter keeps only what its gemma3 reader assumes (every 6th layer full, sliding base 10000,
    query_pre_attn_scalar = head_dim): for a GGUF of this model that gives the same logits, ask for those."""
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    tok = tiny_tokenizer()
    _write_tokenizer_files(folder, tok)
    if layer_types is None and layers == len(GEMMA3_LAYER_TYPES):
        layer_types = GEMMA3_LAYER_TYPES
    torch.manual_seed(seed)
    cfg = transformers.Gemma3TextConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim, max_position_embeddings=256,
        rms_norm_eps=1e-6, initializer_range=init_std, eos_token_id=tok.token_to_id("<|im_end|>"),
        bos_token_id=tok.token_to_id("<|endoftext|>"), pad_token_id=tok.token_to_id("<|endoftext|>"),
        tie_word_embeddings=True, sliding_window=sliding_window, layer_types=layer_types,
        rope_parameters=json.loads(json.dumps(rope_parameters or GEMMA3_ROPE)),
        query_pre_attn_scalar=query_pre_attn_scalar, **extra)
    model = transformers.Gemma3ForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(0.2 * torch.randn_like(p))  # Gemma's w (the norm multiplies by 1 + w): not all zeros
    model.eval().save_pretrained(folder)
    return folder


_GEMMA3_HF_TO_GGUF = {"input_layernorm.weight": "attn_norm.weight",
                      "post_attention_layernorm.weight": "post_attention_norm.weight",
                      "pre_feedforward_layernorm.weight": "ffn_norm.weight",
                      "post_feedforward_layernorm.weight": "post_ffw_norm.weight"}


def gemma3_to_gguf(hf_dir: Path, path: Path, qtype: QT = QT.F32, layer_keys: bool = False) -> Path:
    """A GGUF of a tiny Gemma 3 folder as llama.cpp's convert_hf_to_gguf (Gemma3Model) writes one: every norm weight
    stored as 1 + w, no Q/K permutation, attention.sliding_window, key/value_length = head_dim, rope.freq_base of the
    full layers; 2-D weights as `qtype`. (llama.cpp's reader assumes the rest: see write_tiny_gemma3.)
    ``layer_keys``: also attention.sliding_window_pattern (one flag per layer, true = sliding) and rope.freq_base_swa,
    which the converter does not write for gemma3 but prepare reads where present."""
    from safetensors.numpy import load_file

    cfg = json.loads((hf_dir / "config.json").read_text())
    tensors: dict[str, tuple[np.ndarray, QT]] = {}
    for hf_name, values in load_file(str(hf_dir / "model.safetensors")).items():
        if hf_name.startswith("model.layers."):
            i, rest = hf_name.removeprefix("model.layers.").split(".", 1)
            name = f"blk.{i}.{_GEMMA3_HF_TO_GGUF.get(rest) or _HF_TO_GGUF[rest]}"
        else:
            name = _HF_TO_GGUF[hf_name]
        values = values.astype(np.float32)
        if name.endswith("norm.weight"):
            values = values + np.float32(1)  # convert_hf_to_gguf: data_torch + norm_shift (1.0)
        tensors[name] = (values, qtype)
    rope = cfg.get("rope_parameters") or {}
    gcfg = {"layers": cfg["num_hidden_layers"], "hidden": cfg["hidden_size"], "intermediate": cfg["intermediate_size"],
            "heads": cfg["num_attention_heads"], "kv_heads": cfg["num_key_value_heads"], "eps": cfg["rms_norm_eps"],
            "rope_theta": (rope.get("full_attention") or {}).get("rope_theta", 1_000_000.0),
            "context": cfg["max_position_embeddings"], "head_dim": cfg["head_dim"],
            "extra": {"gemma3.attention.sliding_window": (cfg["sliding_window"], gguf.GGUFValueType.UINT32)}}
    if layer_keys:
        sliding = (rope.get("sliding_attention") or {}).get("rope_theta", 10_000.0)
        gcfg["extra"] |= {
            "gemma3.attention.sliding_window_pattern": ([t == "sliding_attention" for t in cfg["layer_types"]],
                                                        gguf.GGUFValueType.ARRAY),
            "gemma3.rope.freq_base_swa": (sliding, gguf.GGUFValueType.FLOAT32)}
    return write_gguf(path, "gemma3", gcfg, tensors, Tokenizer.from_file(str(hf_dir / "tokenizer.json")))


def hf_logits(folder: Path, ids: list[int]) -> np.ndarray:
    """transformers' own f32 logits [T, vocab] for token ids."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def edited_hf_copy(hf: Path, out: Path, change: dict[str, Any]) -> Path:
    """A copy of an HF checkpoint folder at `out` (its files linked, not copied) whose config.json has `change`
    applied: a dict value is merged into the dict already there (e.g. some keys of rope_parameters), None or any
    other value replaces it."""
    out.mkdir()
    for f in hf.iterdir():
        if f.name != "config.json":
            (out / f.name).symlink_to(f)
    raw = json.loads((hf / "config.json").read_text())
    for k, v in change.items():
        raw[k] = raw[k] | v if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    (out / "config.json").write_text(json.dumps(raw))
    return out


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference relative to the largest magnitude of b (the reference side)."""
    return float(np.abs(a - b).max() / np.abs(b).max())


def torch_with_package_weights(hf: Path, pkg_dir: Path) -> Any:
    """transformers' model with every weight replaced by the package's dequantized values (q4/q8: only the
    arithmetic then differs between the two)."""
    import torch
    import transformers

    from model_prep.checkpoint import FUSED
    from model_prep.hf_source import canonical_name
    from model_prep.package import open_package

    model = transformers.AutoModelForCausalLM.from_pretrained(hf, dtype=torch.float32).eval()
    pkg = open_package(pkg_dir)
    model_type = model.config.model_type
    with torch.no_grad():
        for name, p in model.named_parameters():
            canon = canonical_name(name, model_type)
            if canon == "output.weight" and pkg.config.tie_word_embeddings:
                canon = "token_embd.weight"
            assert canon is not None, name
            blk, layer, short = [*canon.split(".", 2), "", ""][:3]
            if blk == "blk" and short in FUSED:  # phi3: the package holds the parts, in row order
                p.copy_(torch.from_numpy(np.concatenate([pkg.tensor_f32(f"blk.{layer}.{n}") for n in FUSED[short]])))
            elif model_type == "gemma3_text" and canon.endswith("norm.weight"):  # the package holds 1 + w
                p.copy_(torch.from_numpy(pkg.tensor_f32(canon) - np.float32(1)))
            else:
                p.copy_(torch.from_numpy(pkg.tensor_f32(canon)))
    return model


def transformers_logits(hf: Path, pkg_dir: Path, ids: list[int], weights: str) -> np.ndarray:
    """What the package's logits [T, vocab] for ids should be: transformers' own for an f32 package, else
    transformers' with the package's dequantized weights."""
    import torch

    if weights == "f32":
        return hf_logits(hf, ids)
    with torch.no_grad():
        return torch_with_package_weights(hf, pkg_dir)(torch.tensor([ids])).logits[0].numpy()


def hf_greedy(folder: Path, ids: list[int], steps: int) -> list[int]:
    """transformers' greedy continuation (no EOS stop), `steps` tokens."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                             eos_token_id=None, pad_token_id=0)
    return [int(t) for t in out[0, len(ids):]]


# --- GGUF --------------------------------------------------------------------------------------------------------

_HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight", "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
    "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    # phi3, as convert_hf_to_gguf's Phi3MiniModel: fused, gate and up in one ffn_up of 2 * intermediate rows
    "self_attn.qkv_proj.weight": "attn_qkv.weight", "mlp.gate_up_proj.weight": "ffn_up.weight",
}
# byte offsets of the f16 scale fields inside one block, for types gguf cannot quantize (we write random blocks)
_K_SCALES = {QT.Q2_K: (80, 82), QT.Q3_K: (108,), QT.Q4_K: (0, 2), QT.Q5_K: (0, 2), QT.Q6_K: (208,)}


def llama_cpp_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permutation of Q/K rows: rotate-half pairs become adjacent pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def encode_tensor(values: np.ndarray, qtype: QT, rng: np.random.Generator) -> np.ndarray:
    """values f32 -> the array GGUFWriter.add_tensor takes for `qtype` (random blocks for K-quants)."""
    if qtype == QT.F32:
        return values.astype(np.float32)
    if qtype in _K_SCALES:
        block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
        rows, cols = values.shape
        raw = rng.integers(0, 256, size=(rows, cols // block, nbytes), dtype=np.uint8)
        for off in _K_SCALES[qtype]:
            scale = rng.uniform(0.001, 0.01, size=(rows, cols // block)).astype(np.float16)
            raw[..., off: off + 2] = scale.view(np.uint8).reshape(rows, cols // block, 2)
        return raw.reshape(rows, -1)
    return gguf.quants.quantize(values.astype(np.float32), qtype)


def gguf_tokenizer_fields(writer: gguf.GGUFWriter, tok: Tokenizer, pre: str = "gpt2", eos: str = "<|im_end|>",
                          template: str = CHATML) -> None:
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    tokens = [""] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    specials = {a["id"] for a in data["added_tokens"]}
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([3 if i in specials else 1 for i in range(len(tokens))])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tok.token_to_id("<|endoftext|>"))
    writer.add_eos_token_id(tok.token_to_id(eos))
    writer.add_add_bos_token(False)
    writer.add_chat_template(template)


def finish_gguf(w: gguf.GGUFWriter) -> None:
    """Write everything added to a GGUFWriter and close the file."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def rewrite_gguf(src: Path, out: Path, arch: str | None = None,
                 add: Callable[[gguf.GGUFWriter], None] | None = None, drop: str | None = None) -> Path:
    """A copy of GGUF file `src` at `out`: its metadata (minus key `drop`; keys renamed from the source's architecture
    prefix to `arch`), then whatever `add` writes, then the same tensors bytes for bytes."""
    reader = gguf.GGUFReader(str(src))
    old = str(reader.fields["general.architecture"].contents())
    arch = arch or old
    w = gguf.GGUFWriter(str(out), arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture" or name == drop:
            continue
        key = name.replace(f"{old}.", f"{arch}.", 1)
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            w.add_array(key, field.contents())
        else:
            w.add_key_value(key, field.contents(), field.types[0])
    if add:
        add(w)
    for t in reader.tensors:
        w.add_tensor(t.name, np.asarray(t.data), raw_shape=list(reversed([int(d) for d in t.shape])),
                     raw_dtype=t.tensor_type)
    finish_gguf(w)
    return out


def write_gguf(path: Path, arch: str, cfg: dict[str, Any], tensors: dict[str, tuple[np.ndarray, QT]],
               tok: Tokenizer, seed: int = 0) -> Path:
    """tensors: canonical name -> (f32 values in numpy (rows, cols) shape, GGUF type to store them as)."""
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(cfg["layers"])
    w.add_context_length(cfg.get("context", 256))
    w.add_embedding_length(cfg["hidden"])
    w.add_feed_forward_length(cfg["intermediate"])
    w.add_head_count(cfg["heads"])
    w.add_head_count_kv(cfg["kv_heads"])
    w.add_layer_norm_rms_eps(cfg.get("eps", 1e-5))
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    head_dim = cfg.get("head_dim", cfg["hidden"] // cfg["heads"])
    if "head_dim" in cfg:  # as llama.cpp's converter writes an explicit head_dim (qwen3)
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    for key, value in cfg.get("extra", {}).items():  # e.g. phi3's rope.scaling.* and attention.sliding_window
        w.add_key_value(key, value[0], value[1])
    gguf_tokenizer_fields(w, tok, cfg.get("pre", "gpt2"), cfg.get("eos", "<|im_end|>"), cfg.get("template", CHATML))
    for name, (values, qtype) in tensors.items():
        w.add_tensor(name, encode_tensor(values, qtype if values.ndim == 2 else QT.F32, rng),
                     raw_dtype=qtype if values.ndim == 2 else QT.F32)
    finish_gguf(w)
    return path


def hf_to_gguf(hf_dir: Path, path: Path, qtype: QT = QT.F32) -> Path:
    """Convert a tiny HF checkpoint the way llama.cpp does (llama: permuted Q/K rows), 2-D weights as `qtype`."""
    from safetensors.numpy import load_file

    cfg = json.loads((hf_dir / "config.json").read_text())
    arch = cfg["model_type"]
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    state = load_file(str(hf_dir / "model.safetensors"))
    tensors: dict[str, tuple[np.ndarray, QT]] = {}
    for hf_name, values in state.items():
        if hf_name.startswith("model.layers."):
            i, rest = hf_name.removeprefix("model.layers.").split(".", 1)
            name = f"blk.{i}.{_HF_TO_GGUF[rest]}"
        else:
            name = _HF_TO_GGUF[hf_name]
        values = values.astype(np.float32)
        if arch == "llama" and name.endswith(("attn_q.weight", "attn_q.bias")):
            values = llama_cpp_permute(values, heads)
        if arch == "llama" and name.endswith(("attn_k.weight", "attn_k.bias")):
            values = llama_cpp_permute(values, kv)
        tensors[name] = (values, qtype)
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    if rope.get("rope_type") == "llama3":
        tensors["rope_freqs.weight"] = (llama_cpp_rope_factors(cfg["hidden_size"] // heads, rope), QT.F32)
    extra: dict[str, Any] = {}
    if arch == "phi3":  # convert_hf_to_gguf's Phi3MiniModel: the longrope tensors and keys, sliding_window (0: none)
        import math

        orig = cfg["original_max_position_embeddings"]
        extra["phi3.attention.sliding_window"] = (cfg.get("sliding_window") or 0, gguf.GGUFValueType.UINT32)
        if rope.get("rope_type") in ("longrope", "su"):
            scale = cfg["max_position_embeddings"] / orig
            attn = math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0
            extra["phi3.rope.scaling.attn_factor"] = (attn, gguf.GGUFValueType.FLOAT32)
            extra["phi3.rope.scaling.original_context_length"] = (orig, gguf.GGUFValueType.UINT32)
            tensors["rope_factors_long.weight"] = (np.array(rope["long_factor"], dtype=np.float32), QT.F32)
            tensors["rope_factors_short.weight"] = (np.array(rope["short_factor"], dtype=np.float32), QT.F32)
    gcfg = {"layers": cfg["num_hidden_layers"], "hidden": cfg["hidden_size"], "intermediate": cfg["intermediate_size"],
            "heads": heads, "kv_heads": kv, "eps": cfg["rms_norm_eps"],
            "rope_theta": (cfg.get("rope_parameters") or {}).get("rope_theta", cfg.get("rope_theta", 10000.0)),
            "context": cfg["max_position_embeddings"], "extra": extra}
    if arch == "phi3":
        gcfg |= {"eos": "<|endoftext|>", "template": PHI3_TEMPLATE}
    if cfg.get("head_dim"):
        gcfg["head_dim"] = cfg["head_dim"]
    return write_gguf(path, arch, gcfg, tensors, Tokenizer.from_file(str(hf_dir / "tokenizer.json")))


def llama_cpp_rope_factors(head_dim: int, rope: dict[str, Any]) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf for "llama3" RoPE scaling: the divisor of each frequency, as rope_freqs.weight."""
    import math

    base = rope.get("rope_theta", 10000.0)
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    old = rope["original_max_position_embeddings"]
    out = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * base ** (i / head_dim)
        if wavelen < old / high:
            out.append(1.0)
        elif wavelen > old / low:
            out.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


# Tensor types of write_kquant_gguf's two llama layers, as a Q4_K_M file mixes them: layer 0's q/k/v in three types
# (no stacked matvec) and q4k gate + up (the fused SwiGLU matvec), layer 1's q/k/v all Q4_K (stacked) and gate / up in
# two types (unfused)
_KQUANT_LAYERS = [
    {"attn_q": QT.Q4_K, "attn_k": QT.Q5_K, "attn_v": QT.Q6_K, "attn_output": QT.Q5_0,
     "ffn_gate": QT.Q4_K, "ffn_up": QT.Q4_K, "ffn_down": QT.Q6_K},
    {"attn_q": QT.Q4_K, "attn_k": QT.Q4_K, "attn_v": QT.Q4_K, "attn_output": QT.Q6_K,
     "ffn_gate": QT.Q5_K, "ffn_up": QT.Q6_K, "ffn_down": QT.Q4_K},
]


def write_kquant_gguf(path: Path, seed: int = 0) -> Path:
    """A tiny random llama GGUF whose weights are Q4_K / Q5_K / Q6_K / Q5_0 blocks (model_prep.kquants.random_blocks:
    valid blocks with llama.cpp's scale ranges), mixed within each layer (_KQUANT_LAYERS); token_embd Q4_K, output
    Q6_K; hidden 256 (K-quant rows are multiples of 256), 4 heads of 64, 2 KV heads, intermediate 512."""
    from model_prep import kquants

    rng = np.random.default_rng(seed)
    hidden, inter, heads, kv, hd = 256, 512, 4, 2, 64
    tok = tiny_tokenizer()
    vocab = tok.get_vocab_size()
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(len(_KQUANT_LAYERS))
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(hd)
    gguf_tokenizer_fields(w, tok)

    def quantized(name: str, rows: int, cols: int, qtype: QT) -> None:
        raw = np.frombuffer(kquants.random_blocks(qtype.name, rows, cols, rng), np.uint8).reshape(rows, -1)
        w.add_tensor(name, raw, raw_dtype=qtype)

    def norm(name: str) -> None:
        w.add_tensor(name, rng.uniform(0.8, 1.2, hidden).astype(np.float32))

    quantized("token_embd.weight", vocab, hidden, QT.Q4_K)
    shapes = {"attn_q": (heads * hd, hidden), "attn_k": (kv * hd, hidden), "attn_v": (kv * hd, hidden),
              "attn_output": (hidden, heads * hd), "ffn_gate": (inter, hidden), "ffn_up": (inter, hidden),
              "ffn_down": (hidden, inter)}
    for i, types in enumerate(_KQUANT_LAYERS):
        norm(f"blk.{i}.attn_norm.weight")
        norm(f"blk.{i}.ffn_norm.weight")
        for t, qtype in types.items():
            quantized(f"blk.{i}.{t}.weight", *shapes[t], qtype)
    norm("output_norm.weight")
    quantized("output.weight", vocab, hidden, QT.Q6_K)
    finish_gguf(w)
    return path
