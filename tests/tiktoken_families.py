"""Llama 3 and Qwen (Qwen2 / Qwen2.5 / Qwen3) tokenizers from their tiktoken rank files, three ways.

The rank files come as data inside two PyPI packages that scripts/setup-python installs for the test extra
(--no-deps, never imported here): llama-models (Meta's Llama 3 `tokenizer.model`, with its split pattern and special
tokens in `llama3/tokenizer.py`) and dashscope (Qwen's `qwen.tiktoken`, its pattern in `tokenizers/qwen_tokenizer.py`).
The patterns and Llama 3's special tokens are read from those sources as text.

From one family we make:
- the GGUF tokenizer metadata llama.cpp's converter writes for such a model (`gguf_metadata`), which fieldllm turns
  back into a tokenizer.json;
- tiktoken's own encoder (the reference implementation these vocabularies were made with): `tiktoken_encoding`;
- transformers' tokenizer built from the same ranks by its TikTokenConverter: `transformers_tokenizer`.
"""

from __future__ import annotations

import ast
import base64
import importlib.util
import itertools
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import gguf
import numpy as np

# Qwen2's added tokens from id 151643 on (Qwen2.5's tokenizer_config.json; Qwen3 appends the last four).
QWEN_ADDED = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    "<tool_response>", "</tool_response>", "<think>", "</think>",
]
QWEN3_VOCAB_SIZE = 151936  # Qwen3-0.6B's embedding rows: the ids past the added tokens are padding

# llama.cpp's token types (gguf.TokenType)
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5


def package_dir(name: str) -> Path | None:
    """Where an installed package's files are, without importing it (None when it is not installed)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def load_ranks(path: Path) -> dict[bytes, int]:
    """A tiktoken rank file: one "base64(token bytes) rank" per line."""
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _source_literal(path: Path, name: str, index: int = 0) -> Any:
    """The `index`-th literal value assigned to `name` in a Python source file, read without running it."""
    values = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            try:
                values.append(ast.literal_eval(node.value))
            except ValueError:
                continue
    if len(values) <= index:
        raise LookupError(f"{path} assigns no literal {name}")
    return values[index]


def byte_chars() -> dict[int, str]:
    """GPT-2's byte -> character table (as transformers' bytes_to_unicode and llama.cpp's converter spell tokens)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table: dict[int, str] = bytes_to_unicode()
    return table


def spell(token: bytes, table: dict[int, str]) -> str:
    return "".join(table[byte] for byte in token)


def merges_by_bpe(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """One merge per multi-byte token: the two parts that BPE with only the lower ranks leaves, in rank order.

    llama.cpp's converter derives Qwen's merges so (QwenModel.bpe in convert_hf_to_gguf.py), and Qwen2's own
    tokenizer.json holds exactly these (151387 merges)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = [token[i:i + 1] for i in range(len(token))]
        while len(parts) > 2:
            pair_ranks = [ranks.get(a + b, rank) for a, b in itertools.pairwise(parts)]
            at = pair_ranks.index(min(pair_ranks))  # the leftmost of equals, as llama.cpp's bpe
            if pair_ranks[at] >= rank:
                break
            parts[at:at + 2] = [parts[at] + parts[at + 1]]
        if len(parts) != 2:
            raise ValueError(f"token {token!r} (rank {rank}) is not one merge of lower-ranked tokens")
        merges.append((parts[0], parts[1]))
    return merges


@dataclass
class Family:
    name: str
    ranks_path: Path
    pattern: str  # the split regex the family's tiktoken encoder uses
    added: list[str]  # special tokens, from id len(ranks) on
    user_defined: frozenset[str]  # those llama.cpp's converter writes as USER_DEFINED (the others: CONTROL)
    vocab_size: int  # the model's embedding rows; ids past the added tokens are "[PAD{id}]", UNUSED
    pre: str  # tokenizer.ggml.pre
    architecture: str
    bos: str
    eos: str
    pad: str | None
    add_bos: bool
    merges_like_qwen: bool  # merges one per token (llama.cpp's Qwen way) rather than every split (TikTokenConverter)

    @cached_property
    def ranks(self) -> dict[bytes, int]:
        return load_ranks(self.ranks_path)

    @property
    def specials(self) -> dict[str, int]:
        return {text: len(self.ranks) + n for n, text in enumerate(self.added)}

    def tiktoken_encoding(self) -> Any:
        import tiktoken

        return tiktoken.Encoding(self.name, pat_str=self.pattern, mergeable_ranks=self.ranks,
                                 special_tokens=self.specials)

    @cached_property
    def transformers_tokenizer(self) -> Any:
        """transformers' TikTokenConverter on the same ranks, pattern and special tokens, as a fast tokenizer."""
        from transformers import PreTrainedTokenizerFast
        from transformers.convert_slow_tokenizer import TikTokenConverter

        converter = TikTokenConverter(vocab_file=str(self.ranks_path), pattern=self.pattern,
                                      extra_special_tokens=self.added)
        # the ranks already read (tiktoken's loader would also copy the file into its cache folder)
        converter.load_tiktoken_bpe = lambda tiktoken_url: self.ranks  # type: ignore[method-assign]
        return PreTrainedTokenizerFast(tokenizer_object=converter.converted())

    def gguf_merges(self) -> list[str]:
        """tokenizer.ggml.merges as llama.cpp's converter writes them: "left right" in GPT-2's byte alphabet."""
        table = byte_chars()
        if self.merges_like_qwen:
            return [f"{spell(a, table)} {spell(b, table)}" for a, b in merges_by_bpe(self.ranks)]
        # Llama 3: Meta's tokenizer.json (which llama.cpp converts) got its merges from TikTokenConverter, every
        # split of a token into two tokens (280147 merges)
        model = json.loads(self.transformers_tokenizer.backend_tokenizer.to_str())["model"]
        return [" ".join(pair) for pair in model["merges"]]

    def gguf_metadata(self) -> dict[str, Any]:
        """tokenizer.ggml.* as llama.cpp's convert_hf_to_gguf writes them for this family's model."""
        table = byte_chars()
        tokens = [""] * len(self.ranks)
        for token, rank in self.ranks.items():
            tokens[rank] = spell(token, table)
        types = [NORMAL] * len(tokens)
        for text in self.added:
            tokens.append(text)
            types.append(USER_DEFINED if text in self.user_defined else CONTROL)
        for token_id in range(len(tokens), self.vocab_size):
            tokens.append(f"[PAD{token_id}]")
            types.append(UNUSED)
        ids = self.specials
        meta: dict[str, Any] = {
            "tokenizer.ggml.model": "gpt2",
            "tokenizer.ggml.pre": self.pre,
            "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.merges": self.gguf_merges(),
            "tokenizer.ggml.bos_token_id": ids[self.bos],
            "tokenizer.ggml.eos_token_id": ids[self.eos],
            "tokenizer.ggml.add_bos_token": self.add_bos,
        }
        if self.pad is not None:
            meta["tokenizer.ggml.padding_token_id"] = ids[self.pad]
        return meta


def llama3_family() -> Family | None:
    """Llama 3 (3.1's special tokens), or None without llama-models."""
    root = package_dir("llama_models")
    if root is None or not (root / "llama3/tokenizer.model").is_file():
        return None
    source = root / "llama3/tokenizer.py"
    named: list[str] = _source_literal(source, "special_tokens")
    reserved = int(_source_literal(source, "num_reserved_special_tokens"))
    # as Tokenizer.__init__ there: the named tokens, then reserved ones up to 256 in all
    added = named + [f"<|reserved_special_token_{2 + i}|>" for i in range(reserved - len(named))]
    return Family(
        name="llama3", ranks_path=root / "llama3/tokenizer.model", pattern=_source_literal(source, "pat_str"),
        added=added, user_defined=frozenset(), vocab_size=128256, pre="llama-bpe", architecture="llama",
        bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, add_bos=True, merges_like_qwen=False,
    )


def qwen_family() -> Family | None:
    """Qwen3's tokenizer (Qwen2 / Qwen2.5: the same ranks and split, fewer added tokens), or None without dashscope."""
    root = package_dir("dashscope")
    if root is None or not (root / "resources/qwen.tiktoken").is_file():
        return None
    return Family(
        name="qwen", ranks_path=root / "resources/qwen.tiktoken",
        pattern=_source_literal(root / "tokenizers/qwen_tokenizer.py", "PAT_STR"),
        added=QWEN_ADDED,
        # not special in Qwen's tokenizer_config.json and not "<|...|>": llama.cpp writes them USER_DEFINED
        user_defined=frozenset(t for t in QWEN_ADDED if not t.startswith("<|")),
        vocab_size=QWEN3_VOCAB_SIZE, pre="qwen2", architecture="qwen2",
        bos="<|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>", add_bos=False, merges_like_qwen=True,
    )


def write_gguf(family: Family, path: Path, hidden: int = 32) -> Path:
    """A one-layer random model of the family's architecture and vocabulary size, with its tokenizer metadata."""
    meta = family.gguf_metadata()
    rng = np.random.default_rng(0)
    writer = gguf.GGUFWriter(str(path), family.architecture)
    writer.add_block_count(1)
    writer.add_context_length(256)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(2 * hidden)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(500000.0)
    writer.add_tokenizer_model(meta["tokenizer.ggml.model"])
    writer.add_tokenizer_pre(meta["tokenizer.ggml.pre"])
    writer.add_token_list(meta["tokenizer.ggml.tokens"])
    writer.add_token_types(meta["tokenizer.ggml.token_type"])
    writer.add_token_merges(meta["tokenizer.ggml.merges"])
    writer.add_bos_token_id(meta["tokenizer.ggml.bos_token_id"])
    writer.add_eos_token_id(meta["tokenizer.ggml.eos_token_id"])
    if "tokenizer.ggml.padding_token_id" in meta:
        writer.add_pad_token_id(meta["tokenizer.ggml.padding_token_id"])
    writer.add_add_bos_token(meta["tokenizer.ggml.add_bos_token"])
    kv = hidden // 2
    shapes = {"token_embd.weight": (family.vocab_size, hidden), "output_norm.weight": (hidden,),
              "blk.0.attn_norm.weight": (hidden,), "blk.0.attn_q.weight": (hidden, hidden),
              "blk.0.attn_k.weight": (kv, hidden), "blk.0.attn_v.weight": (kv, hidden),
              "blk.0.attn_output.weight": (hidden, hidden), "blk.0.ffn_norm.weight": (hidden,),
              "blk.0.ffn_gate.weight": (2 * hidden, hidden), "blk.0.ffn_up.weight": (2 * hidden, hidden),
              "blk.0.ffn_down.weight": (hidden, 2 * hidden)}
    if family.architecture == "qwen2":  # Qwen2 has q/k/v biases
        shapes |= {"blk.0.attn_q.bias": (hidden,), "blk.0.attn_k.bias": (kv,), "blk.0.attn_v.bias": (kv,)}
    for name, shape in shapes.items():
        values = rng.standard_normal(shape).astype(np.float32) * 0.05
        writer.add_tensor(name, values.astype(np.float16) if len(shape) == 2 else values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
