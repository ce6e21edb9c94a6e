#!/usr/bin/env python3
"""Write a model package of a given shape with random 4-bit weights, for speed benchmarks of the engine.

The bytes are random (uniform codes, small f16 scales), the layout is exactly what `fieldllm prepare` writes (it goes
through the same planner and packer). Too big to carry to the GPU machine, so it is generated there:
    python3 scripts/make_synthetic_package.py --shape qwen2.5-1.5b --out build/models/synthetic-qwen2.5-1.5b
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_prep import format as fmt
from model_prep import quant
from model_prep.checkpoint import Checkpoint, SourceTensor
from model_prep.config import ModelConfig
from model_prep.pack import write_package
from model_prep.plan import Options, make_plan

SHAPES = {
    # SmolLM2-135M-Instruct (llama): our package of it keeps the GGUF's q8 embedding, which is also the output head
    "smollm2-135m": ModelConfig(architecture="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                num_layers=30, num_heads=9, num_kv_heads=3, head_dim=64, rms_norm_eps=1e-5,
                                rope_theta=100000.0, rope_layout=fmt.ROPE_INTERLEAVED, context_length=8192,
                                tie_word_embeddings=True, attention_bias=False),
    # Qwen2.5-1.5B-Instruct's config.json
    "qwen2.5-1.5b": ModelConfig(architecture="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                                num_layers=28, num_heads=12, num_kv_heads=2, head_dim=128, rms_norm_eps=1e-6,
                                rope_theta=1000000.0, rope_layout=fmt.ROPE_HALF, context_length=32768,
                                tie_word_embeddings=True, attention_bias=True),
}
# A one-token tokenizer: the benchmark feeds token ids, but a package always has a tokenizer.json.
_TOKENIZER = ('{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,'
              '"pre_tokenizer":null,"post_processor":null,"decoder":null,'
              '"model":{"type":"WordLevel","vocab":{"<unk>":0},"unk_token":"<unk>"}}')


def _random_q4(rows: int, cols: int, rng: np.random.Generator) -> quant.Planes:
    """Uniform random codes; scale ~ U(1e-3, 3e-3) and min = -7.5 * scale, so values are centred on zero."""
    qweight = rng.integers(0, 2**32, size=rows * cols // fmt.Q4_PER_WORD, dtype=np.uint32)
    scale = rng.uniform(1e-3, 3e-3, size=(rows, cols // fmt.GROUP_SIZE)).astype(np.float16)
    minimum = (scale.astype(np.float32) * -7.5).astype(np.float16)
    return {"qweight": qweight, "scales": quant._pack_f16_pairs(scale, minimum).reshape(-1)}


def _random_q8(rows: int, cols: int, rng: np.random.Generator) -> quant.Planes:
    q = rng.integers(-127, 128, size=(rows, cols), dtype=np.int8)
    scale = rng.uniform(1e-4, 3e-4, size=(rows, cols // fmt.GROUP_SIZE)).astype(np.float16)
    return quant.pack_q8(q, scale)


def synthetic_checkpoint(config: ModelConfig, seed: int, q8_embedding: bool,
                         like: Path | None = None) -> Checkpoint:
    """``like``: a real package whose tokenizer.json, chat template and special tokens the synthetic one takes (its
    vocabulary must have the shape's size), for benchmarks that need real text: grammars, templates."""
    rng = np.random.default_rng(seed)
    tensors = []
    for name, shape in config.tensor_shapes().items():
        if len(shape) == 1:
            values = np.ones(shape, np.float32) if name.endswith("norm.weight") else np.zeros(shape, np.float32)
            tensors.append(SourceTensor(name, shape, "F32", lambda v=values: v))
        else:
            storage = fmt.Q8 if q8_embedding and name == "token_embd.weight" else fmt.Q4

            def carry(s: tuple[int, ...] = shape, st: str = storage) -> tuple[str, quant.Planes]:
                return st, (_random_q8 if st == fmt.Q8 else _random_q4)(s[0], s[1], rng)

            tensors.append(SourceTensor(name, shape, "Q8_0" if storage == fmt.Q8 else "Q4_1",
                                        lambda: np.zeros(0, np.float32), carry, storage))
    tokenizer, template = _TOKENIZER, "{{ messages[0]['content'] }}"
    generation: dict[str, Any] = {"bos_token_id": None, "eos_token_ids": [0], "add_bos_token": False}
    if like is not None:
        manifest = json.loads((like / "manifest.json").read_text())
        if manifest["config"]["vocab_size"] != config.vocab_size:
            raise SystemExit(f"{like} has {manifest['config']['vocab_size']} tokens, the shape {config.vocab_size}")
        tokenizer = (like / manifest.get("tokenizer", "tokenizer.json")).read_text()
        template, generation = manifest["chat_template"], manifest["generation"]
    return Checkpoint(kind="synthetic", name=f"synthetic-{config.architecture}", config=config,
                      tokenizer_json=tokenizer, chat_template=template, generation=generation,
                      tensors=tensors, files=[])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-1.5b")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--like", type=Path, metavar="PACKAGE",
                    help="take tokenizer.json, chat template and special tokens from this real package")
    args = ap.parse_args()
    t = time.perf_counter()
    ckpt = synthetic_checkpoint(SHAPES[args.shape], args.seed, q8_embedding=args.shape == "smollm2-135m",
                                like=args.like)
    plan = make_plan(ckpt, Options())
    write_package(ckpt, plan, args.out, key=f"synthetic-{args.shape}-{args.seed}",
                  source={"kind": "synthetic", "shape": args.shape, "seed": args.seed})
    print(f"{args.out}: {plan.total_bytes / 2**20:.0f} MiB in {len(plan.shards)} shards, "
          f"{time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
