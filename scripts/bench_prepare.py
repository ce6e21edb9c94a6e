#!/usr/bin/env python3
"""Benchmark: time to prepare the default model vs time to read its file once (same run, same machine).

Prints one line per figure and a JSON object last. Usage: python scripts/bench_prepare.py [--runs N]
Read times: "cached" reads the file through the page cache after a first read (the fastest a read can be);
"uncached" reads it with O_DIRECT, bypassing the page cache (what a first read from disk costs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # disk_read

from disk_read import read_cached, read_uncached

from model_prep.plan import Options
from model_prep.prepare import default_model_path, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    src = default_model_path()
    cached = min(read_cached([src]) for _ in range(args.runs))
    uncached_runs = [read_uncached([src]) for _ in range(args.runs)]
    uncached = min(u for u in uncached_runs if u is not None) if None not in uncached_runs else None
    times = []
    for _ in range(args.runs):
        tmp = Path(tempfile.mkdtemp())
        t = time.perf_counter()
        prepare(src, tmp / "pkg", Options(), stream=open(os.devnull, "w"))
        times.append(time.perf_counter() - t)
        shutil.rmtree(tmp)
    best = min(times)
    result = {"file_bytes": src.stat().st_size, "read_cached_s": cached, "read_uncached_s": uncached,
              "prepare_s": best, "prepare_over_cached_read": best / cached,
              "prepare_over_uncached_read": best / uncached if uncached else None, "target_ratio": 5.0}
    print(f"file: {src.name} {result['file_bytes'] / 2**20:.1f} MiB")
    print(f"read (page cache): {cached:.3f} s")
    print(f"read (O_DIRECT, uncached): {uncached:.3f} s" if uncached else "read (O_DIRECT): not supported here")
    print(f"prepare (best of {args.runs}, in-process, no cache hit): {best:.3f} s")
    print(f"prepare / cached read: {result['prepare_over_cached_read']:.1f}x (target <= 5x)")
    if uncached:
        print(f"prepare / uncached read: {result['prepare_over_uncached_read']:.1f}x (target <= 5x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
