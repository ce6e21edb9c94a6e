"""What constrained decoding costs the reference engine: decode tokens/s with and without a grammar, same run.

Both sides decode the same number of tokens from the same prompt, alternating (free, constrained, free, ...) so that
a busy machine slows both alike; the grammar is a schema with one long string field, so that the constrained answer
is not cut short by its own end. Compile time is measured apart (first compile, then a cache hit), since the engine
keeps compiled grammars. Prints one line a figure, then all of them as one JSON line.

    .venv/bin/python scripts/bench_structured.py [--package DIR] [--tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_prep.reference import Engine, load  # noqa: E402
from model_prep.reference.grammar import GrammarSpec  # noqa: E402
from model_prep.reference.sampling import Sampler  # noqa: E402

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["notes"],
          "properties": {"notes": {"type": "string", "minLength": 4000, "maxLength": 8000}}}
PROMPT = [{"role": "user", "content": "Write maintenance notes for mud pump P-3 after a pressure excursion."}]


def decode_rate(engine: Engine, tokens: int, spec: GrammarSpec | None) -> float:
    """Decode tokens/s over exactly ``tokens`` new tokens (prefill excluded)."""
    prompt = engine.prompt_ids(PROMPT)
    engine.reset_cache()  # the same prefill work on both sides
    constraint = engine.grammars().constraint(spec) if spec else None
    picks = engine.generate_picks(prompt, tokens, Sampler(), constraint)
    next(picks)  # prefill and the first pick
    start = time.perf_counter()
    n = sum(1 for _ in picks)
    seconds = time.perf_counter() - start
    if n != tokens - 1:
        raise SystemExit(f"decoded {n + 1} tokens, not {tokens}: the answer ended early; raise minLength")
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", type=Path, default=ROOT / "build/models/smollm2-135m-instruct.q4_1")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    engine = load(args.package, context=512)
    spec = GrammarSpec.json_schema(SCHEMA)
    grammars = engine.grammars()
    t = time.perf_counter()
    grammars.compile(spec)
    first = time.perf_counter() - t
    t = time.perf_counter()
    grammars.compile(spec)
    cached = time.perf_counter() - t
    decode_rate(engine, 8, None)  # warm-up
    free, constrained = [], []
    for _ in range(args.repeats):
        free.append(decode_rate(engine, args.tokens, None))
        constrained.append(decode_rate(engine, args.tokens, spec))
    result = {"package": args.package.name, "tokens": args.tokens, "repeats": args.repeats,
              "free_tok_s": round(statistics.median(free), 2),
              "constrained_tok_s": round(statistics.median(constrained), 2),
              "free_runs": [round(x, 2) for x in free], "constrained_runs": [round(x, 2) for x in constrained],
              "compile_first_ms": round(1000 * first, 2), "compile_cached_ms": round(1000 * cached, 4)}
    result["constrained_over_free"] = round(result["constrained_tok_s"] / result["free_tok_s"], 3)
    for k, v in result.items():
        if not isinstance(v, list):
            print(f"{k:<24} {v}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
