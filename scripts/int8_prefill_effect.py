"""What rounding the prefill matmuls' activations to int8 would do to the answers (issue 10; the stop-21 choice).

The int8 prefill route (scripts/matmul_q4_i8.wgsl, measured on the GPU by bench_engine.mjs --prefill-i8) rounds X, the
input of every layer matmul of a prefill pass, per token and group of 32 columns: d = max|x| / 127, x -> rint(x / d)
* d, as llama.cpp's q8_1 activations do. Decode steps (one token: the matvecs) and the LM head stay f32. This runs
the reference engine both ways on the app's own structured requests (app.eval: each case's task request, its grammar,
greedy) and reports how often the answer, its decisive value and the card's escalation change, and how often the
model's own suggestion (escalate or not) agrees with the case's expected escalation each way. For scale, the same
comparison for the f16 KV cache the WebGPU engine already keeps (forward.py kv_f16), a rounding the project accepted.

    .venv/bin/python scripts/int8_prefill_effect.py [--package DIR] [--cases FILE] [--limit N] [--json out.json]

Not a test: a measurement for the owner's decision. Prints one line per case, then the totals as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.eval.cases import load_cases  # noqa: E402
from app.eval.run import answer  # noqa: E402
from app.field import load_rules, load_tasks, task_request  # noqa: E402
from model_prep.reference import load  # noqa: E402
from model_prep.reference.engine import NumpyModel  # noqa: E402

F32 = npt.NDArray[np.float32]
GROUP = 32  # columns per rounding group: one q4 group, one dot4I8Packed stage of the GPU kernel


def round_int8(x: F32) -> F32:
    """X [T, cols] rounded per token and group of 32 columns to d * q, q = rint(x / d) in -127..127, d = max|x| / 127
    (matmul_q4_i8.wgsl's quantize; rint rounds half to even, as WGSL's round() does)."""
    t, cols = x.shape
    g = x.reshape(t, cols // GROUP, GROUP)
    d = np.abs(g).max(axis=2, keepdims=True) / np.float32(127)
    q = np.rint(np.divide(g, d, out=np.zeros_like(g), where=d > 0))
    return (q * d).astype(np.float32).reshape(t, cols)


class _RoundedLeft:
    """W^T whose product with X [T, cols] rounds X first when T > 1 (a prefill pass; decode's one token stays f32)."""

    __array_ufunc__ = None  # numpy then leaves `x @ this` to __rmatmul__

    def __init__(self, wt: F32):
        self.wt = wt

    def __rmatmul__(self, x: F32) -> F32:
        return (round_int8(x) if x.ndim == 2 and x.shape[0] > 1 else x) @ self.wt


class _Rounded:
    def __init__(self, w: F32):
        self.T = _RoundedLeft(w.T)


class _RoundingCache:
    """forward.py reads every layer matrix through ``w.cache.f32`` (and the embedding through ``rows``): while
    ``on``, the matrices it gets round their left operand. The LM head is a product with one row in a prefill pass
    (the last token), so it stays f32, as the GPU engine's head (a matvec) does."""

    def __init__(self, cache: Any):
        self.cache = cache
        self.on = False

    def f32(self, m: Any) -> Any:
        w = self.cache.f32(m)
        return _Rounded(w) if self.on else w

    def rows(self, m: Any, index: Any) -> F32:
        rows: F32 = self.cache.rows(m, index)
        return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", type=Path, default=ROOT / "build/models/smollm2-135m-instruct")
    ap.add_argument("--cases", type=Path, help="an app.eval case file (default tests/eval/cases.json)")
    ap.add_argument("--limit", type=int, default=0, help="the first N cases only (0: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not (args.package / "manifest.json").is_file():
        raise SystemExit(f"{args.package}: no package there; run `fieldllm prepare --out {args.package}` first")
    cases = load_cases(args.cases)[: args.limit or None]
    rules, tasks = load_rules(), load_tasks()
    engine = load(args.package)
    kv16 = load(args.package, kv_f16=True)
    if not isinstance(engine.model, NumpyModel):
        raise SystemExit("the reference engine's model is not forward.py's")
    rounding = _RoundingCache(engine.model.weights.cache)
    engine.model.weights.cache = rounding  # type: ignore[assignment]

    def run(e: Any, case: Any) -> dict[str, Any]:
        e.reset_cache()  # every run prefills the whole prompt
        a = answer(e, case, rules, tasks)
        return {"content": a["content"], "decisive": a["decisive"], "escalate": a["card"]["escalate"],
                "model_right": a["card"]["model_suggests_escalation"] == case.escalate,
                "tokens": a["completion_tokens"]}

    rows = []
    started = time.perf_counter()
    for i, case in enumerate(cases):
        rounding.on = False
        base = run(engine, case)
        rounding.on = True
        i8 = run(engine, case)
        rounding.on = False
        f16 = run(kv16, case)
        prompt = len(engine.prompt_ids(task_request(case.kind, case.text, [], rules, tasks)["messages"]))
        row = {"id": case.id, "prompt_tokens": prompt, "answer_tokens": base["tokens"],
               "f32_model_right": base["model_right"]}
        for name, other in (("int8", i8), ("kv_f16", f16)):
            row |= {f"{name}_same_answer": other["content"] == base["content"],
                    f"{name}_same_decisive": other["decisive"] == base["decisive"],
                    f"{name}_same_escalation": other["escalate"] == base["escalate"],
                    f"{name}_model_right": other["model_right"]}
        rows.append(row)
        same = {k: "same" if v else "DIFFERENT" for k, v in row.items()}
        print(f"[{i + 1}/{len(cases)}] {case.id}: prompt {prompt} tokens, answer {base['tokens']}; int8 prefill: "
              f"answer {same['int8_same_answer']}, decisive {same['int8_same_decisive']}, escalation "
              f"{same['int8_same_escalation']}; f16 KV: answer {same['kv_f16_same_answer']}, decisive "
              f"{same['kv_f16_same_decisive']}", flush=True)
    n = len(rows)
    total = {"package": str(args.package), "cases": n, "seconds": round(time.perf_counter() - started, 1),
             **{k: sum(r[k] for r in rows) for k in rows[0]
                if k.endswith(("_answer", "_decisive", "_escalation", "_right"))},
             "prompt_tokens_median": sorted(r["prompt_tokens"] for r in rows)[n // 2]}
    print(json.dumps(total))
    if args.json:
        args.json.write_text(json.dumps({"total": total, "cases": rows}, indent=1))


if __name__ == "__main__":
    main()
