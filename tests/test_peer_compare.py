"""scripts/peer/compare.py pairs the right llama-bench rows with our figures (pp256 at depth 0; tg128 at depth 256,
and at depth D for our runs from position D)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ratios_pair_the_right_rows(tmp_path: Path) -> None:
    rows = [{"n_prompt": 256, "n_gen": 0, "n_depth": 0, "avg_ts": 20000.0},
            {"n_prompt": 0, "n_gen": 128, "n_depth": 0, "avg_ts": 999.0},  # not the depth our decode runs at
            {"n_prompt": 256, "n_gen": 0, "n_depth": 256, "avg_ts": 1.0},
            {"n_prompt": 0, "n_gen": 128, "n_depth": 256, "avg_ts": 800.0},
            {"n_prompt": 0, "n_gen": 128, "n_depth": 1920, "avg_ts": 700.0}]
    (tmp_path / "llama-tiny.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    for n, (prefill, decode) in enumerate([(10000.0, 400.0), (12000.0, 600.0)], 1):
        (tmp_path / f"fieldllm-tiny-r{n}.json").write_text(json.dumps({
            "prefill_tokens_per_s": prefill, "decode_tokens_per_s": decode, "stream_read_GBps": 3000.0,
            "fraction_of_bound": decode / 1000, "bound_by": "stream_read_1GiB"}))
    for n, decode in enumerate([350.0, 420.0], 1):  # decode from position 1920: its own column, not the depth-256 one
        (tmp_path / f"fieldllm-tiny-kv1920-r{n}.json").write_text(json.dumps({
            "prefill_tokens_per_s": 1.0, "decode_tokens_per_s": decode, "stream_read_GBps": 3000.0,
            "fraction_of_bound": 0.01, "bound_by": "stream_read_1GiB"}))
    # a mis-timed bound (far from the other processes' on the same GPU) is left out of the bound's columns
    (tmp_path / "fieldllm-tiny-r3.json").write_text(json.dumps({
        "prefill_tokens_per_s": 11000.0, "decode_tokens_per_s": 500.0, "stream_read_GBps": -479.0,
        "fraction_of_bound": -1.0, "bound_by": "stream_read_1GiB"}))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/peer/compare.py"), str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout
    row = next(line for line in out.splitlines() if line.startswith("| tiny"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["tiny", "10,000-12,000 / 20,000", "0.50-0.60x", "400-600 / 800", "0.50-0.75x", "350-420 / 700",
                     "0.50-0.60x", "3,000", "40.0-60.0%"]
    assert "(depth 1920)" in out.splitlines()[0]


def test_ab_table_gives_each_variant_its_rounds(tmp_path: Path) -> None:
    def run(tok_s: float, step: float, split: float, fnv: int) -> str:
        kinds = {"matvec": 0.9, "swiglu": 0.8, "matvec_head": 0.4, "attention_split": split, "attention_combine": 0.3}
        return json.dumps({"decode_tokens_per_s": tok_s, "decode_ids_fnv1a": fnv,
                           "profile": {"step_ms": step, "by_kind": {k: {"gpu_ms": v} for k, v in kinds.items()}}})
    (tmp_path / "ab-old-1.json").write_text(run(300.0, 3.6, 0.38, 7))
    (tmp_path / "ab-new-1.json").write_text(run(310.0, 3.4, 0.20, 7))
    (tmp_path / "ab-new-2.json").write_text(run(320.0, 3.3, 0.25, 7))
    (tmp_path / "ab-tuned-1.json").write_text(run(330.0, 3.2, 0.25, 8))  # another hash: shown, so it is seen
    out = subprocess.run([sys.executable, str(ROOT / "scripts/peer/compare.py"), str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout
    rows = {cells[0]: cells for line in out.splitlines() if line.startswith("| ")
            if (cells := [c.strip() for c in line.strip("|").split("|")])[0] in ("old", "new", "tuned")}
    assert list(rows) == ["old", "new", "tuned"]
    assert rows["old"] == ["old", "1", "300", "3.60", "0.90", "0.80", "0.40", "0.38", "0.30", "7"]
    assert rows["new"][1:4] == ["2", "310-320", "3.30-3.40"] and rows["new"][7] == "0.20-0.25"
    assert rows["tuned"][-1] == "8"


def test_ab_only_prints_the_sweeps_variants(tmp_path: Path) -> None:
    """sweep.sh's folders hold ab-NAME-ROUND.json of any variant names and no llama.cpp rows: --ab prints their
    table alone."""
    for name, tok_s in (("cg8", 290.0), ("base", 280.0), ("cg8", 300.0)):
        rnd = len(list(tmp_path.glob(f"ab-{name}-*.json"))) + 1
        (tmp_path / f"ab-{name}-{rnd}.json").write_text(json.dumps({
            "decode_tokens_per_s": tok_s, "decode_ids_fnv1a": 5,
            "profile": {"step_ms": 3.0, "by_kind": {"attention_combine": {"gpu_ms": 0.35}}}}))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/peer/compare.py"), "--ab", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].startswith("| variant |") and not any("llama" in line for line in out)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out[2:]]
    assert [r[:3] for r in rows] == [["base", "1", "280"], ["cg8", "2", "290-300"]]


def test_ab_prints_prefill_figures_for_prefill_sweeps(tmp_path: Path) -> None:
    """MODE=prefill sweeps (bench_engine --prefill-profile): the table gives the prefill rate, the pass's GPU time and
    its matmul families per variant, not the decode columns."""
    def run(tok_s: float, gate_up: float, down: float) -> str:
        fams = {"matmul_qkv": 6.4, "attention": 2.9, "matmul_o": 4.6, "matmul_gate_up": gate_up, "matmul_down": down}
        return json.dumps({"prefill_tokens_per_s": tok_s, "decode_ids_fnv1a": 11, "decode_tokens_per_s": 1.0,
                           "prefill_profile": {"gpu_ms": 79.0, "by_kind": {k: {"gpu_ms": v} for k, v in fams.items()}}})
    (tmp_path / "ab-base-1.json").write_text(run(3056.0, 41.7, 21.7))
    (tmp_path / "ab-base-2.json").write_text(run(2877.0, 41.8, 21.8))
    (tmp_path / "ab-wide-1.json").write_text(run(2643.0, 49.1, 21.7))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/peer/compare.py"), "--ab", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0].split("|")[3].strip() == "prefill tok/s" and "decode" not in out[0]
    rows = {r[0]: r for r in ([c.strip() for c in line.strip("|").split("|")] for line in out[2:])}
    assert rows["base"][1:4] == ["2", "2,877-3,056", "79.0"]
    assert rows["base"][7:9] == ["41.7-41.8", "21.7-21.8"] and rows["wide"][7] == "49.1"
    assert rows["wide"][-1] == "11"
