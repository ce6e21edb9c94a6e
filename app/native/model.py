"""A model package in the native CPU engine (ctypes over the library build.py compiles), as a reference ``Model``.

Load, as app/engine/cpu/model.js does in the browser: manifest (checked) -> a private copy of the library (the
engine's state is the library's globals: one copy per model) -> fe_init allocates the run state (KV cache included)
-> each weight shard read straight into memory from fe_alloc, its size and sha256 checked as it streams (the q4 / q8 /
f32 planes of docs/FORMAT.md as they are: weights stay 4-bit) -> every tensor's chunks pointed at their planes ->
the RoPE table written (cos and sin of pos * inv_freq in f64, rounded to f32, as forward.py's RunState, with
config.rope_freq_factors). ``forward(ids, pos)`` returns the last position's logits; the tokenizer, chat template,
sampling and grammar are the reference engine's (model_prep.reference.Engine on this model).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from model_prep import format as fmt
from model_prep.config import ModelConfig
from model_prep.errors import PackageError
from model_prep.package import Package, open_package
from model_prep.reference.engine import Engine, context_for, engine_from_package
from model_prep.rope import inv_freq

from .build import library

F32 = npt.NDArray[np.float32]
PASS_TOKENS = 128  # tokens per fe_forward call (model_prep.reference.engine.PREFILL_CHUNK: prefill passes fit one)
READ_BYTES = 1 << 22  # a shard is read (and hashed) in pieces of this many bytes

STORAGE = {"f32": 0, "q8": 1, "q4": 2, "q4k": 3, "q5k": 4, "q6k": 5}  # cpu_engine.h FE_F32 .. FE_Q6K
K_STORAGES = ("q4k", "q5k", "q6k")  # planes qweight, (qhigh,) super
SLOT_TOKEN_EMBD, SLOT_OUTPUT_NORM, SLOT_OUTPUT, SLOT_LAYER0, PER_LAYER = 0, 1, 2, 3, 16
LAYER_TENSORS = ("attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_q.bias",
                 "attn_k.bias", "attn_v.bias", "attn_output.weight", "ffn_norm.weight", "ffn_gate.weight",
                 "ffn_up.weight", "ffn_down.weight", "attn_q_norm.weight", "attn_k_norm.weight",
                 "post_attention_norm.weight",
                 "post_ffw_norm.weight")  # slot order (cpu_engine.h FE_ATTN_NORM .. FE_POST_FFW_NORM)
QK_NORMS = ("attn_q_norm.weight", "attn_k_norm.weight")  # only with config.qk_norm (qwen3, gemma3)
POST_NORMS = ("post_attention_norm.weight", "post_ffw_norm.weight")  # only with config.post_norms (gemma3)
ERRORS = ("ok", "a config value this engine cannot run", "out of memory", "called out of order", "bad arguments")
MAX_LAYERS = 256
MAX_DEFAULT_THREADS = 8


class NativeEngineError(RuntimeError):
    """The native engine failed or refused a package (the message says what to do)."""


def unsupported(c: ModelConfig) -> str | None:
    """Why the C engine cannot run a config, or None (model.js's ``unsupported``)."""
    if c.architecture not in ("llama", "qwen2", "qwen3", "phi3", "gemma3"):
        return f"architecture {c.architecture} is unknown"
    if c.hidden_act not in (fmt.ACT_SILU, fmt.ACT_GELU_TANH):
        return f"hidden_act {c.hidden_act} is unknown"
    if c.qk_norm and c.attention_bias:
        return "qk_norm with attention_bias is not supported"
    if c.head_dim % 4:
        return f"head_dim {c.head_dim} is not a multiple of 4"
    if c.num_layers > MAX_LAYERS:
        return f"{c.num_layers} layers is more than the {MAX_LAYERS} this engine holds"
    return None


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """cpu_engine.h's signatures (pointers as c_void_p: addresses in this process)."""
    i32, f32, ptr = ctypes.c_int32, ctypes.c_float, ctypes.c_void_p
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "fe_alloc": (ptr, [ctypes.c_uint32]),
        "fe_init": (i32, [i32, i32, i32, i32, i32, i32, i32, f32, f32, i32, i32, i32, i32, i32]),
        "fe_options": (i32, [f32, i32, i32, f32, i32, i32]),
        "fe_layer_sliding": (ptr, []), "fe_rope_cos_sliding": (ptr, []), "fe_rope_sin_sliding": (ptr, []),
        "fe_tensor": (i32, [i32, i32, i32, i32, i32]),
        "fe_chunk": (i32, [i32, i32, i32, i32, ptr, ptr, ptr]),
        "fe_matmul": (i32, [i32, i32, ptr, ptr]),
        "fe_rope_cos": (ptr, []), "fe_rope_sin": (ptr, []), "fe_ids": (ptr, []), "fe_logits": (ptr, []),
        "fe_mask": (ptr, []),
        "fe_forward": (i32, [i32, i32, i32]),
        "fe_pick": (i32, [i32]),
        "fe_pick_rest": (f32, []),
        "fe_heap_end": (ctypes.c_size_t, []),
        "fe_release": (None, []),
        "fe_threads": (i32, [i32, i32]),  # (n, the caller may sleep while it waits: yes, a Python thread)
        "fe_worker": (i32, [i32]),
        "fe_stop": (None, []),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _private_library() -> ctypes.CDLL:
    """A copy of the library of its own (dlopen shares one copy per path, and the engine's state is its globals);
    the file goes once loaded."""
    folder = tempfile.mkdtemp(prefix="fieldllm-native-")
    try:
        path = Path(folder) / "libfieldllm_cpu.so"
        shutil.copyfile(library(), path)
        return _bind(ctypes.CDLL(str(path)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class NativeModel:
    """One package's weights and run state in the native engine; ``forward`` as model_prep.reference.engine.Model.
    Calls run one at a time (a lock: they share the run state); ctypes lets go of the GIL while C runs."""

    kind = "native"

    def __init__(self, pkg: Package, context: int | None = None, pass_tokens: int = PASS_TOKENS, threads: int = 1,
                 decode_threads: int | None = None):
        c = pkg.config
        why = unsupported(c)
        if why:
            raise NativeEngineError(f"the native engine cannot run {pkg.name}: {why}; serve it with --engine numpy")
        self.config = c
        self.name = pkg.name
        self._context = context_for(c, context)
        self.pass_tokens = max(1, min(pass_tokens, self._context))
        self._lock = threading.Lock()
        self._lib: ctypes.CDLL | None = _private_library()
        self._workers: list[threading.Thread] = []
        # threads for passes of several tokens (prompts) and for one token (decoding); the workers are started once
        self.threads = max(1, threads)
        self.decode_threads = max(1, min(self.threads, decode_threads or self.threads))
        try:
            self._load(pkg)
            self._start_workers()
        except BaseException:
            self.close()
            raise
        lib = self._lib
        self.heap_bytes = int(lib.fe_heap_end())
        self._ids = np.ctypeslib.as_array(ctypes.cast(lib.fe_ids(), ctypes.POINTER(ctypes.c_int32)),
                                          (self.pass_tokens,))
        self._logits = np.ctypeslib.as_array(ctypes.cast(lib.fe_logits(), ctypes.POINTER(ctypes.c_float)),
                                             (c.vocab_size,))

    @property
    def context(self) -> int:
        return self._context

    def _check(self, rc: int, what: str) -> None:
        if rc == 0:
            return
        if rc == 2:
            raise MemoryError(f"out of memory while {what} for {self.name}: choose a smaller --context or model")
        raise PackageError(f"the native engine refused {self.name} while {what}: "
                           f"{ERRORS[rc] if 0 <= rc < len(ERRORS) else rc}; prepare the package again")

    def _load(self, pkg: Package) -> None:
        lib, c = self._lib, self.config
        assert lib is not None
        self._check(lib.fe_init(c.vocab_size, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads,
                                c.num_kv_heads, c.head_dim, c.rms_norm_eps, float(np.float32(math.sqrt(c.head_dim))),
                                1 if c.rope_layout == "interleaved" else 0, 1 if c.attention_bias else 0,
                                1 if c.qk_norm else 0, self._context, self.pass_tokens), "allocating the run state")
        if c.gemma3_keys:  # gemma3's options (0: not used), the sliding layers' flags; their RoPE tables: _write_rope
            self._check(lib.fe_options(c.embedding_scale or 0.0, 1 if c.post_norms else 0,
                                       1 if c.hidden_act == fmt.ACT_GELU_TANH else 0, c.attention_scale or 0.0,
                                       c.sliding_window or 0, 1 if c.rope_theta_sliding is not None else 0),
                        "setting gemma3's options")
            flags = np.ctypeslib.as_array(ctypes.cast(lib.fe_layer_sliding(), ctypes.POINTER(ctypes.c_int32)),
                                          (c.num_layers,))
            flags[:] = [1 if c.layer_sliding(i) else 0 for i in range(c.num_layers)]
        shard_at = {entry["path"]: self._read_shard(pkg, entry) for entry in _weight_files(pkg)}
        self._bind_tensors(pkg, shard_at)
        self._write_rope()

    def _start_workers(self) -> None:
        """Threads 1 .. threads-1, each inside fe_worker (ctypes lets go of the GIL) until close()."""
        lib = self._lib
        assert lib is not None
        for tid in range(1, self.threads):
            t = threading.Thread(target=lib.fe_worker, args=(tid,), name=f"fe-worker-{tid}", daemon=True)
            t.start()
            self._workers.append(t)

    def _use_threads(self, n: int) -> None:
        lib = self._lib
        assert lib is not None
        self._check(lib.fe_threads(n, 1), f"starting {n} threads")

    def _read_shard(self, pkg: Package, entry: dict[str, Any]) -> int:
        """Reads one weight file into fe_alloc memory, checking its size and sha256; its address."""
        lib = self._lib
        assert lib is not None
        path, size = pkg.path / entry["path"], int(entry["size"])
        if not path.is_file():
            raise PackageError(f"{path} is missing; prepare the package again")
        if path.stat().st_size != size:
            raise PackageError(f"{path} has {path.stat().st_size} bytes, the manifest says {size}; prepare the "
                               "package again")
        if size >= 1 << 32:
            raise PackageError(f"{path} is {size} bytes, more than one allocation holds; prepare it with a smaller "
                               "--shard-size")
        at = lib.fe_alloc(size)
        if not at:
            raise MemoryError(f"out of memory while loading {path}: choose a smaller model")
        view = memoryview((ctypes.c_char * size).from_address(at)).cast("B")
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            done = 0
            while done < size:
                n = f.readinto(view[done:done + READ_BYTES])
                if not n:
                    raise PackageError(f"{path} ended after {done} bytes; prepare the package again")
                digest.update(view[done:done + n])
                done += n
        if digest.hexdigest() != entry["sha256"]:
            raise PackageError(f"{path} does not match its sha256 in the manifest; prepare the package again")
        return int(at)

    def _bind_tensors(self, pkg: Package, shard_at: dict[str, int]) -> None:
        """Points every tensor slot at its chunks' planes, checking each shape against the config."""
        lib, c, tensors = self._lib, self.config, pkg.manifest["tensors"]
        assert lib is not None
        hd, kvd, h, inter = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim, c.hidden_size, c.intermediate_size
        shapes = {"attn_norm.weight": (1, h), "attn_q.weight": (hd, h), "attn_k.weight": (kvd, h),
                  "attn_v.weight": (kvd, h), "attn_q.bias": (1, hd), "attn_k.bias": (1, kvd), "attn_v.bias": (1, kvd),
                  "attn_output.weight": (h, hd), "ffn_norm.weight": (1, h), "ffn_gate.weight": (inter, h),
                  "ffn_up.weight": (inter, h), "ffn_down.weight": (h, inter), "attn_q_norm.weight": (1, c.head_dim),
                  "attn_k_norm.weight": (1, c.head_dim), "post_attention_norm.weight": (1, h),
                  "post_ffw_norm.weight": (1, h)}

        def bind(slot: int, name: str, rows: int, cols: int, vector: bool) -> None:
            t = tensors.get(name)
            if t is None:
                raise PackageError(f"{pkg.name} has no tensor {name}; prepare the package again")
            shape = tuple(t["shape"]) if len(t["shape"]) == 2 else (1, t["shape"][0])
            if shape != (rows, cols):
                raise PackageError(f"{name} is {t['shape']}, the config says {[cols] if vector else [rows, cols]}; "
                                   "prepare the package again")
            storage = t["storage"]
            if storage not in STORAGE or (vector and storage != "f32"):
                raise PackageError(f"{name} is stored as {storage}, which the native engine cannot read; prepare the "
                                   "package again")
            self._check(lib.fe_tensor(slot, STORAGE[storage], rows, cols, len(t["chunks"])), f"declaring {name}")
            for i, ch in enumerate(t["chunks"]):
                base = shard_at[ch["file"]]
                planes = ch["planes"]
                q = planes["data" if storage == "f32" else "qweight"][0]
                s = None if storage == "f32" else base + planes["super" if storage in K_STORAGES else "scales"][0]
                hi = base + planes["qhigh"][0] if "qhigh" in planes else None
                self._check(lib.fe_chunk(slot, i, ch["rows"][0], ch["rows"][1], base + q, s, hi), f"binding {name}")

        bind(SLOT_TOKEN_EMBD, "token_embd.weight", c.vocab_size, h, False)
        bind(SLOT_OUTPUT_NORM, "output_norm.weight", 1, h, True)
        bind(SLOT_OUTPUT, "token_embd.weight" if c.tie_word_embeddings else "output.weight", c.vocab_size, h, False)
        for layer in range(c.num_layers):
            for k, n in enumerate(LAYER_TENSORS):
                if (n.endswith(".bias") and not c.attention_bias) or (n in QK_NORMS and not c.qk_norm) or \
                        (n in POST_NORMS and not c.post_norms):
                    continue
                rows, cols = shapes[n]
                bind(SLOT_LAYER0 + layer * PER_LAYER + k, f"blk.{layer}.{n}", rows, cols, rows == 1)

    def _write_rope(self) -> None:
        lib, c = self._lib, self.config
        assert lib is not None
        half = c.head_dim // 2
        angles = np.arange(self._context, dtype=np.float64)[:, None] * \
            inv_freq(c.rope_theta, c.head_dim, c.rope_freq_factors)[None, :]  # [context, D/2], radians
        scale = c.rope_attn_factor or 1.0  # cos and sin times longrope's attention factor (phi3), else 1
        tables = [(lib.fe_rope_cos, np.cos(angles) * scale), (lib.fe_rope_sin, np.sin(angles) * scale)]
        if c.rope_theta_sliding is not None:  # gemma3's sliding layers: plain RoPE of their own base
            angles = np.arange(self._context, dtype=np.float64)[:, None] * \
                inv_freq(c.rope_theta_sliding, c.head_dim)[None, :]
            tables += [(lib.fe_rope_cos_sliding, np.cos(angles)), (lib.fe_rope_sin_sliding, np.sin(angles))]
        for fn, values in tables:
            table = np.ctypeslib.as_array(ctypes.cast(fn(), ctypes.POINTER(ctypes.c_float)), (self._context * half,))
            table[:] = values.astype(np.float32).reshape(-1)

    def forward(self, ids: Sequence[int], pos: int, all_logits: bool = False) -> F32:
        """Runs ``ids`` at positions pos.. (filling the KV cache); the last position's logits [vocab] (a copy)."""
        if all_logits:
            raise NotImplementedError("the native engine gives the last position's logits only; use the numpy "
                                      "engine (model_prep.reference.load) for every position's")
        n = len(ids)
        if n < 1 or pos < 0 or pos + n > self._context:
            raise ValueError(f"positions {pos}..{pos + n - 1} exceed the context of {self._context}")
        ids_arr = np.asarray(ids, dtype=np.int64)
        if ids_arr.min() < 0 or ids_arr.max() >= self.config.vocab_size:
            raise ValueError(f"token ids must be in 0..{self.config.vocab_size - 1}")
        with self._lock:
            lib = self._lib
            if lib is None:
                raise NativeEngineError(f"{self.name} was closed: load it again")
            self._use_threads(self.threads if n > 1 else self.decode_threads)
            for start in range(0, n, self.pass_tokens):
                part = ids_arr[start:start + self.pass_tokens]
                self._ids[:len(part)] = part
                rc = lib.fe_forward(len(part), pos + start, 1 if start + len(part) == n else 0)
                if rc:
                    raise NativeEngineError(f"the native engine's forward pass failed: "
                                            f"{ERRORS[rc] if 0 <= rc < len(ERRORS) else rc}")
            return self._logits.copy()

    def close(self) -> None:
        """Frees the weights and the run state; later calls raise NativeEngineError."""
        with self._lock:
            lib, self._lib = self._lib, None
            if lib is None:
                return
            lib.fe_stop()
            for t in self._workers:
                t.join()
            lib.fe_release()


def _weight_files(pkg: Package) -> list[dict[str, Any]]:
    """The manifest's files that hold tensor planes, in its order (model.js's weightFiles)."""
    used = {ch["file"] for t in pkg.manifest["tensors"].values() for ch in t["chunks"]}
    files = [f for f in pkg.manifest["files"] if f["path"] in used]
    unlisted = used - {f["path"] for f in files}
    if unlisted:
        raise PackageError(f"{pkg.path / 'manifest.json'} files lacks {', '.join(sorted(unlisted))}; prepare the "
                           "package again")
    return files


def default_threads(threads: int = 0, decode_threads: int = 0) -> tuple[int, int]:
    """(threads for prompt passes, threads per decoded token). 0 means: half the cores for prompts (at most
    MAX_DEFAULT_THREADS; the other half stays for the server's event loop, tokenizing, its clients and whatever else
    runs), and half of that per token. Every step of a pass waits for all its threads, so a thread that the OS does
    not schedule stalls the others: on this project's shared 2-core machine, two threads for prompts made 8
    concurrent streams 1.6x slower (scripts/bench_serve_cpu.py, docs/PERFORMANCE.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    t = threads or max(1, min(MAX_DEFAULT_THREADS, cores // 2))
    return t, min(t, decode_threads or max(1, t // 2))


def load(package: Path | str, context: int | None = None, threads: int = 0, decode_threads: int = 0) -> Engine:
    """The reference engine (tokenizer, template, sampling, grammar) on the native model of a package; threads as
    ``default_threads``."""
    pkg = open_package(package)
    t, d = default_threads(threads, decode_threads)
    return engine_from_package(pkg, model=NativeModel(pkg, context, threads=t, decode_threads=d))
