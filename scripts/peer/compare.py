"""Ours / llama.cpp per figure, from one side-by-side run's results folder (run.sh writes it).

Usage: python3 compare.py RESULTS_DIR   (llama-SHAPE.jsonl from llama-bench -o jsonl, fieldllm-SHAPE-rN.json from
scripts/bench_engine.mjs --json). Prefill 256 is compared with llama-bench's pp256 at depth 0; our decode runs from
position 256, so it is compared with tg128 at depth 256. Ranges are min-max over the rounds. Standard library only
(it runs on the GPU machine too).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _span(values: list[float], digits: int = 0) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:,.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:,.{digits}f}-{hi:,.{digits}f}"


def _ratio(ours: list[float], theirs: list[float]) -> str:
    if not ours or not theirs:
        return "-"
    return _span([min(ours) / max(theirs), max(ours) / min(theirs)], 2) + "x"


def compare(results: Path) -> list[str]:
    lines = ["| shape | prefill 256 tok/s: ours / llama.cpp | ratio | decode tok/s: ours / llama.cpp (depth 256) "
             "| ratio | DRAM read GB/s | decode of read bound |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    shapes = sorted({p.stem.split("-r")[0].removeprefix("fieldllm-") for p in results.glob("fieldllm-*-r*.json")}
                    | {p.stem.removeprefix("llama-") for p in results.glob("llama-*.jsonl")} - {"err"})
    bounds = sorted(json.loads(p.read_text()).get("stream_read_GBps", 0.0) for p in results.glob("fieldllm-*-r*.json"))
    median = bounds[len(bounds) // 2] if bounds else 0.0
    for shape in shapes:
        ours = [json.loads(p.read_text()) for p in sorted(results.glob(f"fieldllm-{shape}-r*.json"))]
        rows = []
        lf = results / f"llama-{shape}.jsonl"
        if lf.exists():
            rows = [json.loads(line) for line in lf.read_text().splitlines() if line.strip().startswith("{")]
        pp = [r["avg_ts"] for r in rows if (r.get("n_prompt"), r.get("n_gen"), r.get("n_depth", 0)) == (256, 0, 0)]
        tg = [r["avg_ts"] for r in rows if (r.get("n_prompt"), r.get("n_gen"), r.get("n_depth")) == (0, 128, 256)]
        op = [o["prefill_tokens_per_s"] for o in ours]
        od = [o["decode_tokens_per_s"] for o in ours]
        # one GPU, so every process's read bound should agree: one far from the run's median was mis-timed (before
        # 2026-12-06 the benchmark's minimum of differences could print -479 or 5,712 GB/s beside 2,900-3,000)
        ok = [o for o in ours if 0.75 * median < o.get("stream_read_GBps", 0) < 1.25 * median]
        bw = [o["stream_read_GBps"] for o in ok]
        fb = [100 * o["fraction_of_bound"] for o in ok if o.get("bound_by") == "stream_read_1GiB"]
        lines.append(f"| {shape} | {_span(op)} / {_span(pp)} | {_ratio(op, pp)} | {_span(od)} / {_span(tg)} "
                     f"| {_ratio(od, tg)} | {_span(bw)} | {_span(fb, 1)}% |")
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: compare.py RESULTS_DIR (the folder run.sh fills: llama-*.jsonl, fieldllm-*.json)")
    print("\n".join(compare(Path(sys.argv[1]))))
