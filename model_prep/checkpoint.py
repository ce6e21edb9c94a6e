"""What every checkpoint reader (GGUF, Hugging Face folder) hands to the packer (config, tokenizer, tensors), and what
the readers derive alike from what each reads its own way: fused tensors split, Gemma 3's config keys, the context
caps (longrope, prepare --long-context, a sliding window)."""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import format as fmt
from .config import ModelConfig
from .errors import InputError
from .quant import Planes


@dataclass
class SourceTensor:
    """One tensor of the checkpoint, read lazily.

    ``load_f32`` returns the source's exact values as f32 (numpy shape ``shape``); ``carry`` returns
    (storage type, planes) when the source's encoding maps onto ours without re-quantizing, else None.
    """

    name: str  # canonical (GGUF) name, see docs/FORMAT.md
    shape: tuple[int, ...]  # numpy shape: (rows, cols) or (n,)
    source_type: str  # e.g. "Q4_1", "F32", "BF16"
    load_f32: Callable[[], npt.NDArray[np.float32]]
    carry: Callable[[], tuple[str, Planes] | None] = lambda: None
    carry_storage: str | None = None  # storage type ``carry`` would give, known without reading data
    # writes the planes ``carry`` would return into ``out`` (u32 arrays of the planned sizes: views of a shard),
    # sparing a copy of the whole tensor; None where the source has no such path
    carry_into: Callable[[Planes], None] | None = None


# Fused projections (phi3: Hugging Face qkv_proj / gate_up_proj, GGUF attn_qkv / ffn_up of 2 * intermediate rows),
# named here by their short names, and the package tensors their rows split into, in row order: [q; k; v] and
# [gate; up] (transformers' Phi3Attention slices qkv so, Phi3MLP chunks gate_up so; llama.cpp's phi3 graph views
# attn_qkv so and its swiglu takes the first half of ffn_up as the gate). Rows are output features and quantization
# groups run along a row, so the split is exact at any storage.
FUSED = {"attn_qkv.weight": ("attn_q.weight", "attn_k.weight", "attn_v.weight"),
         "ffn_gate_up.weight": ("ffn_gate.weight", "ffn_up.weight")}


def fused_rows(config: ModelConfig, short: str) -> tuple[int, ...]:
    """Rows of each part of fused tensor ``short`` (a key of FUSED) under ``config``."""
    if short == "attn_qkv.weight":
        kv = config.num_kv_heads * config.head_dim
        return config.num_heads * config.head_dim, kv, kv
    return config.intermediate_size, config.intermediate_size


def _row_slice(t: SourceTensor, name: str, start: int, stop: int) -> SourceTensor:
    def load() -> npt.NDArray[np.float32]:
        return np.ascontiguousarray(t.load_f32()[start:stop])

    return SourceTensor(name, (stop - start, *t.shape[1:]), t.source_type, load)


def split_fused(tensors: list[SourceTensor], config: ModelConfig,
                part: Callable[[SourceTensor, str, int, int], SourceTensor] = _row_slice) -> list[SourceTensor]:
    """Every fused tensor (FUSED) replaced by its parts, ``part(tensor, name, first row, end row)`` each (default:
    rows of its f32 values; a reader that can carry the encoding passes its own)."""
    out = []
    for t in tensors:
        blk, layer, short = [*t.name.split(".", 2), "", ""][:3]  # "blk", "N", "attn_qkv.weight"
        block = f"{blk}.{layer}"
        if blk != "blk" or short not in FUSED:
            out.append(t)
            continue
        rows = fused_rows(config, short)
        if len(t.shape) != 2 or t.shape[0] != sum(rows):
            raise InputError(f"fused tensor {t.name} has shape {t.shape}; the config implies {sum(rows)} rows "
                             f"({' + '.join(map(str, rows))}): the checkpoint is inconsistent")
        start = 0
        for name, n in zip(FUSED[short], rows, strict=True):
            out.append(part(t, f"{block}.{name}", start, start + n))
            start += n
    return out


def gemma3_config(hidden: int, attention_scale: float, sliding_window: int, sliding: Sequence[bool],
                  rope_theta_sliding: float) -> dict[str, Any]:
    """The Gemma 3 ModelConfig keys. Fixed by the architecture: the embedding scaled by f32(sqrt(hidden)) on lookup
    (transformers' embed_scale is a torch f32 tensor; llama.cpp's sqrtf(n_embd)), pre- and post-norms, GeGLU with
    the tanh GELU. Read by each reader its own way: the attention scale, the window, which layers slide (one flag per
    layer) and the sliding layers' RoPE base."""
    return {
        "embedding_scale": float(np.float32(hidden ** 0.5)),
        "post_norms": True,
        "hidden_act": fmt.ACT_GELU_TANH,
        "attention_scale": attention_scale,
        "sliding_window": sliding_window,
        "layer_types": tuple(fmt.LAYER_SLIDING if s else fmt.LAYER_FULL for s in sliding),
        "rope_theta_sliding": rope_theta_sliding,
    }


def gemma3_sliding(layers: int, period: int) -> list[bool]:
    """Which of ``layers`` slide where a Gemma 3 config gives a period (transformers' sliding_window_pattern,
    llama.cpp's attention.sliding_window_pattern, 6 by default in both): every period-th layer is full."""
    return [(il + 1) % period != 0 for il in range(layers)]


@dataclass(frozen=True)
class ContextNames:
    """How a reader's source names what caps a package's context, for the notes (capped_context), and which
    implementation the reader follows (named first where transformers and llama.cpp differ)."""

    context: str  # the model's whole context: "max_position_embeddings", "context_length"
    original: str  # longrope's original length, within which the short factors are exact
    window: str  # the sliding window
    follows: str  # "transformers" or "llama.cpp"


# transformers switches longrope's factors on the length of the sequence, llama.cpp on the context it runs with
_LONGROPE_SWITCH = {"transformers": "a sequence", "llama.cpp": "a context"}


def capped_context(context: int, notes: list[str], names: ContextNames, *, long_context: bool,
                   original: int | None, long: bool, window: int | None, window_why: str) -> int:
    """The package's context: the model's ``context``, capped where our engines would differ from the reference past
    a length, each cap noted. Longrope (Phi-3 / 3.5; ``original``: its original length, None without longrope):
    our engines build one RoPE table, so by default the package keeps the short factors and stops at ``original``,
    past which transformers and llama.cpp switch to the long factors. ``long``: prepare --long-context
    (``long_context``) took the long factors instead, for every position of the whole context (the reader takes
    them only where ``original`` < the context). A sliding ``window`` below the context caps it too (within the
    window no key is masked); ``window_why`` says why, in the reader's words."""
    if long_context and not long:
        notes.append("--long-context changes nothing here: the model has no longrope scaling past its original "
                     "length")
    if original is not None and not long and original < context:
        notes.append(f"context capped at {original} tokens ({names.original}; the model's {context} needs "
                     "longrope's long factors, which the package does not carry)")
        context = original
    if long:
        capped = f", capped at {window} by {names.window}" if window is not None and window < context else ""
        other = next(r for r in _LONGROPE_SWITCH if r != names.follows)
        notes.append(f"--long-context: longrope's long factors on every position, context {context} tokens "
                     f"({names.context}{capped}); {names.follows} uses them only for {_LONGROPE_SWITCH[names.follows]} "
                     f"longer than the original {original} tokens ({other} for {_LONGROPE_SWITCH[other]} longer than "
                     "it), the short factors within it")
    if window is not None and window < context:
        notes.append(f"context capped at {window} tokens ({window_why})")
        context = window
    return context


@dataclass
class Checkpoint:
    kind: str  # "gguf" or "hf"
    name: str  # a short model name for the manifest and the default output folder
    config: ModelConfig
    # tokenizer.json text, or a function that builds it: GGUF rebuilds it from metadata (0.1 s for SmolLM2), which the
    # packer runs while the first shard is being written (tokenizer_text())
    tokenizer_json: str | Callable[[], str]
    chat_template: str
    generation: dict[str, Any]  # manifest "generation" (bos/eos ids, sampling defaults)
    tensors: list[SourceTensor]
    files: list[Path]  # every file the checkpoint was read from (its content hash keys the cache)
    notes: list[str] = field(default_factory=list)  # anything unusual, shown by --plan and in the report

    def __post_init__(self) -> None:
        if self.config.gemma3_keys:
            self.notes.append("Gemma 3 (embedding scale, post-norms, GeGLU, sliding-window layers): the package is "
                              "format version 5, which fieldllm readers older than it refuse")
        elif self.config.rope_attn_factor is not None:
            self.notes.append(f"RoPE attention factor {self.config.rope_attn_factor:.6g} (longrope): the package is "
                              "format version 4, which fieldllm readers older than it refuse")
        elif self.config.qk_norm:
            self.notes.append("per-head q/k RMSNorm (qwen3): the package is format version 3, which fieldllm "
                              "readers older than it refuse")
        elif self.config.rope_freq_factors is not None:
            self.notes.append("RoPE frequency scaling (llama3): the package is format version 2, which fieldllm "
                              "readers older than it refuse")

    def tokenizer_text(self) -> str:
        if callable(self.tokenizer_json):
            self.tokenizer_json = self.tokenizer_json()
        return self.tokenizer_json

    def check_tokenizer(self) -> None:
        """The tokenizer.json must load in the `tokenizers` library (the app's tokenizer reads the same format), so
        that a bad one fails here rather than on the device."""
        from tokenizers import Tokenizer  # imported here: reading checkpoints does not need it

        try:
            Tokenizer.from_str(self.tokenizer_text())
        except Exception as exc:  # the library raises bare Exceptions
            raise InputError(f"the tokenizer.json of {self.name} does not load ({exc}); the checkpoint's tokenizer "
                             "is damaged or of a kind we do not support") from exc

    def check_tensors(self) -> None:
        """The tensors present must be exactly those the architecture needs, with the right shapes."""
        want = self.config.tensor_shapes()
        have = {t.name: t.shape for t in self.tensors}
        missing = sorted(want.keys() - have.keys())
        if missing:
            raise InputError(
                f"checkpoint lacks tensor {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                + f" needed by the {self.config.architecture} architecture; the file is incomplete or not a "
                + f"{self.config.architecture} model"
            )
        extra = sorted(have.keys() - want.keys())
        if extra:
            raise InputError(f"checkpoint has tensor {extra[0]} that the {self.config.architecture} architecture does "
                             "not use; this variant is not supported")
        for name, shape in want.items():
            if tuple(have[name]) != shape:
                raise InputError(f"tensor {name} has shape {tuple(have[name])}, the config implies {shape}; "
                                 "the checkpoint is inconsistent")


@dataclass(frozen=True)
class SourceHashes:
    """The sha256 of every file a checkpoint is read from, for manifest ``source`` (docs/FORMAT.md) and the cache key.

    ``files``: (path relative to the source: a GGUF's file name, or a name inside the HF folder; size in bytes; hex
    sha256 of the bytes), sorted by path. ``files_sha256``: sha256 of the lines ``sha256sum`` prints for them in this
    order (``<hex>  <path>\n``), so that ``cd SOURCE_DIR && sha256sum FILES... | sha256sum`` gives it."""

    kind: str  # "gguf" (one file) or "hf" (a folder)
    files: tuple[tuple[str, int, str], ...]

    @property
    def listing(self) -> str:
        return "".join(f"{digest}  {path}\n" for path, _, digest in self.files)

    @property
    def files_sha256(self) -> str:
        return hashlib.sha256(self.listing.encode()).hexdigest()

    def manifest_fields(self) -> dict[str, Any]:
        """``sha256`` (a single-file source only: the file's own sha256), ``files_sha256`` and ``files``."""
        out: dict[str, Any] = {"sha256": self.files[0][2]} if self.kind == "gguf" else {}
        return out | {"files_sha256": self.files_sha256,
                      "files": [{"path": p, "size": n, "sha256": h} for p, n, h in self.files]}


def source_hashes(kind: str, root: Path, files: list[Path]) -> SourceHashes:
    """Hash ``files`` (paths under the folder ``root``)."""
    entries = sorted((f.relative_to(root).as_posix(), f.stat().st_size, file_sha256(f)) for f in files)
    return SourceHashes(kind, tuple(entries))


def source_hashes_soon(kind: str, root: Path, files: list[Path]) -> Future[SourceHashes]:
    """``source_hashes`` on a thread of its own, so that the caller parses the checkpoint meanwhile (hashlib and file
    reads release the GIL; SmolLM2's 94 MiB take about 0.07 s)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-sha256")
    future = pool.submit(source_hashes, kind, root, files)
    pool.shutdown(wait=False)  # the thread still finishes the hash, then ends
    return future


def file_sha256(path: Path) -> str:
    # hashed straight from a memory map: reading into a buffer first cost a copy (SmolLM2: 0.074 s -> 0.062 s)
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return hashlib.sha256().hexdigest()  # an empty file cannot be mapped
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return hashlib.sha256(data).hexdigest()
