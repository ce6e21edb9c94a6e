"""Ours / llama.cpp per figure, from one side-by-side run's results folder (run.sh writes it).

Usage: python3 compare.py RESULTS_DIR   (llama-SHAPE.jsonl from llama-bench -o jsonl, fieldllm-SHAPE-rN.json from
scripts/bench_engine.mjs --json; fieldllm-SHAPE-kvD-rN.json from a run with --prefill D). Prefill 256 is compared with
llama-bench's pp256 at depth 0; our decode runs from position 256, so it is compared with tg128 at depth 256; a kvD
run's decode (from position D) with tg128 at depth D, in a column of its own. Ranges are min-max over the rounds.
With run.sh's A/B (ab-VARIANT-N.json from bench_engine --profile), a second table: per variant its decode, the
profiled step and its kernel families, and the greedy ids' hashes (which must agree across variants).
`compare.py --ab DIR` prints that table alone (sweep.sh: one folder per shape and KV); for runs with a prefill
profile (bench_engine --prefill-profile: `MODE=prefill bash sweep.sh`) the table gives prefill figures instead: the
prefill rate, the GPU time of a pass and of its matmul families and attention.
Standard library only (it runs on the GPU machine too).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

_OURS = re.compile(r"fieldllm-(?P<shape>.+?)(?:-kv(?P<kv>\d+))?-r\d+")


def _span(values: list[float], digits: int = 0) -> str:
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    return f"{lo:,.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:,.{digits}f}-{hi:,.{digits}f}"


def _ratio(ours: list[float], theirs: list[float]) -> str:
    if not ours or not theirs:
        return "-"
    return _span([min(ours) / max(theirs), max(ours) / min(theirs)], 2) + "x"


def _ts(rows: list[dict], prompt: int, gen: int, depth: int) -> list[float]:
    """llama-bench's tokens/s of the rows with these n_prompt, n_gen and n_depth."""
    want = (prompt, gen, depth)
    return [r["avg_ts"] for r in rows if (r.get("n_prompt"), r.get("n_gen"), r.get("n_depth", 0)) == want]


def compare(results: Path) -> list[str]:
    # (shape, KV depth or 0, the run's JSON), each file read once
    ours_runs = [(m["shape"], int(m["kv"] or 0), json.loads(p.read_text()))
                 for p in sorted(results.glob("fieldllm-*-r*.json")) if (m := _OURS.fullmatch(p.stem))]
    depths = sorted({kv for _, kv, _ in ours_runs if kv})
    lines = ["| shape | prefill 256 tok/s: ours / llama.cpp | ratio | decode tok/s: ours / llama.cpp (depth 256) "
             "| ratio | " + "".join(f"decode tok/s (depth {d}) | ratio | " for d in depths)
             + "DRAM read GB/s | decode of read bound |",
             "| --- " * (7 + 2 * len(depths)) + "|"]
    shapes = sorted({shape for shape, _, _ in ours_runs}
                    | {p.stem.removeprefix("llama-") for p in results.glob("llama-*.jsonl")} - {"err"})
    bounds = sorted(o.get("stream_read_GBps", 0.0) for _, _, o in ours_runs)
    median = bounds[len(bounds) // 2] if bounds else 0.0
    for shape in shapes:
        ours = [o for s, kv, o in ours_runs if s == shape and not kv]
        rows = []
        lf = results / f"llama-{shape}.jsonl"
        if lf.exists():
            rows = [json.loads(line) for line in lf.read_text().splitlines() if line.strip().startswith("{")]
        pp, tg = _ts(rows, 256, 0, 0), _ts(rows, 0, 128, 256)
        op = [o["prefill_tokens_per_s"] for o in ours]
        od = [o["decode_tokens_per_s"] for o in ours]
        deep = ""
        for d in depths:
            odd = [o["decode_tokens_per_s"] for s, kv, o in ours_runs if s == shape and kv == d]
            tgd = _ts(rows, 0, 128, d)
            deep += f"{_span(odd)} / {_span(tgd)} | {_ratio(odd, tgd)} | "
        # one GPU, so every process's read bound should agree: one far from the run's median was mis-timed (before
        # 2026-12-06 the benchmark's minimum of differences could print -479 or 5,712 GB/s beside 2,900-3,000)
        ok = [o for o in ours if 0.75 * median < o.get("stream_read_GBps", 0) < 1.25 * median]
        bw = [o["stream_read_GBps"] for o in ok]
        fb = [100 * o["fraction_of_bound"] for o in ok if o.get("bound_by") == "stream_read_1GiB"]
        lines.append(f"| {shape} | {_span(op)} / {_span(pp)} | {_ratio(op, pp)} | {_span(od)} / {_span(tg)} "
                     f"| {_ratio(od, tg)} | {deep}{_span(bw)} | {_span(fb, 1)}% |")
    return lines


_AB_FAMILIES = ("matvec", "swiglu", "matvec_head", "attention_split", "attention_combine")
_AB_ORDER = ("old", "new", "tuned")
_PREFILL_FAMILIES = ("matmul_qkv", "attention", "matmul_o", "matmul_gate_up", "matmul_down")


def ab_table(results: Path) -> list[str]:
    """Per A/B variant (old, new, tuned): decode tok/s, the profiled step (ms, with its read-back) and the GPU time of
    its kernel families, min-max over the rounds; and the greedy ids' FNV-1a hashes. For runs with a prefill profile
    (every run of the folder), the prefill rate (each process's median pass), the GPU time of one pass and of its
    families (each repeated alone) instead."""
    runs: dict[str, list[dict]] = {}
    for p in sorted(results.glob("ab-*-*.json")):
        runs.setdefault(p.stem.split("-")[1], []).append(json.loads(p.read_text()))
    if not runs:
        return []
    prefill = all("prefill_profile" in r for rs in runs.values() for r in rs)
    # (profile key, rate key and column, time key and column, families, digits of the times)
    profile, rate, rate_col, time, time_col, families, digits = (
        ("prefill_profile", "prefill_tokens_per_s", "prefill tok/s", "gpu_ms", "pass ms", _PREFILL_FAMILIES, 1)
        if prefill else ("profile", "decode_tokens_per_s", "decode tok/s", "step_ms", "step ms", _AB_FAMILIES, 2))
    lines = [f"| variant | rounds | {rate_col} | {time_col} | " + " | ".join(f"{f} ms" for f in families)
             + " | greedy hashes |", "| --- " * (5 + len(families)) + "|"]
    for variant in sorted(runs, key=lambda v: _AB_ORDER.index(v) if v in _AB_ORDER else len(_AB_ORDER)):
        rs = runs[variant]
        prof = [r.get(profile, {}) for r in rs]
        fams = [_span([p["by_kind"][f]["gpu_ms"] for p in prof if f in p.get("by_kind", {})], digits)
                for f in families]
        hashes = ", ".join(sorted({str(r.get("decode_ids_fnv1a", "-")) for r in rs}))
        lines.append(f"| {variant} | {len(rs)} | {_span([r[rate] for r in rs])} "
                     f"| {_span([p[time] for p in prof if time in p], digits)} | " + " | ".join(fams)
                     + f" | {hashes} |")
    return lines

if __name__ == "__main__":
    ab_only = sys.argv[1:2] == ["--ab"]
    args = sys.argv[2:] if ab_only else sys.argv[1:]
    if len(args) != 1 or not Path(args[0]).is_dir():
        sys.exit("usage: compare.py [--ab] RESULTS_DIR (the folder run.sh fills: llama-*.jsonl, fieldllm-*.json, "
                 "ab-*.json; with --ab only the A/B table)")
    results = Path(args[0])
    print("\n".join(ab_table(results) if ab_only else [*compare(results), "", *ab_table(results)]))
