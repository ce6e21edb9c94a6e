#!/usr/bin/env python3
"""Benchmark our CPU engine (app/engine/cpu: cpu_engine.c in WebAssembly + SIMD128) against wllama (npm
@wllama/wllama: llama.cpp compiled to WebAssembly) in the same headless Chromium on the same machine, on the same
model: the default package and the GGUF it was prepared from. Runs are interleaved (ours, wllama, ours, wllama, ...),
each in a fresh page, single-threaded and, where the page is cross-origin isolated (this server sends COOP/COEP),
multi-threaded. Prints one line a run, the medians with ours / wllama, the machine's load before and after, and
(--json) everything as JSON.

Usage: python scripts/bench_cpu_browser.py [--package DIR] [--gguf FILE] [--prefill 128] [--decode 64]
                                           [--repeats 3] [--threads 1,2] [--json out.json]
The prompt for both engines is the same text, cut to --prefill tokens of the package's tokenizer (wllama's own count
is printed and used for ours). Decode is greedy, --decode tokens with the end-of-text token ignored.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # chromium.py

from bench_common import loadavg  # noqa: E402
from chromium import CHROMIUM  # noqa: E402
from playwright.sync_api import ConsoleMessage, sync_playwright  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from model_prep.prepare import default_model_path  # noqa: E402

DEFAULT_PACKAGE = ROOT / "build/models/smollm2-135m-instruct.q4_1"
TEXT = ("The pump on the lower deck lost pressure twice this morning. The crew checked the inlet filter, the seals "
        "and the motor current; the readings were normal except a slow rise in bearing temperature. ")


class Handler(SimpleHTTPRequestHandler):
    """The checkout read-only, plus /gguf/model.gguf, the package under /pkg/ and wllama under /wllama/; COOP/COEP on
    every answer so that the page may share memory between threads (crossOriginIsolated)."""

    gguf: Path
    package: Path
    wllama: Path

    def guess_type(self, path: str | os.PathLike[str]) -> str:
        if str(path).endswith(".wasm"):
            return "application/wasm"
        if str(path).endswith((".js", ".mjs")):
            return "text/javascript"
        return super().guess_type(path)

    def translate_path(self, path: str) -> str:
        path = path.split("?")[0]
        if path == "/gguf/model.gguf":
            return str(self.gguf)
        if path.startswith("/pkg/") and "/.." not in path:
            return str(self.package / path.removeprefix("/pkg/"))
        if path.startswith("/wllama/") and "/.." not in path:
            return str(self.wllama / path.removeprefix("/wllama/"))
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("BENCH_LOG"):
            super().log_message(format, *args)


def prompt_text(package: Path, n: int) -> str:
    tok = Tokenizer.from_file(str(package / "tokenizer.json"))
    ids = tok.encode(TEXT * (n // 20 + 2), add_special_tokens=False).ids[:n]
    return str(tok.decode(ids))


def print_errors(m: ConsoleMessage) -> None:
    if m.type == "error":
        print("  page:", m.text, file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--package", type=Path, default=DEFAULT_PACKAGE)
    ap.add_argument("--gguf", type=Path, help="the GGUF the package was prepared from (default: the default model's)")
    ap.add_argument("--prefill", type=int, default=128)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--engines", default="ours,wllama")
    ap.add_argument("--wllama", type=Path, default=ROOT / "node_modules/@wllama/wllama",
                    help="the @wllama/wllama npm package folder (default: the pinned devDependency; 2.x and 3.x work)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    package = args.package.resolve()
    if not (package / "manifest.json").is_file():
        sys.exit(f"bench_cpu_browser: {package} is not a model package: run `fieldllm prepare` or give --package")
    if not (ROOT / "app/engine/cpu/cpu_engine.wasm").is_file():
        sys.exit("bench_cpu_browser: app/engine/cpu/cpu_engine.wasm is missing: run scripts/build_wasm.sh")
    wllama = args.wllama.resolve()
    if not (wllama / "esm/index.js").is_file():
        sys.exit(f"bench_cpu_browser: no @wllama/wllama package at {wllama}: run npm ci, or give --wllama")
    wllama_version = json.loads((wllama / "package.json").read_text())["version"]
    gguf = (args.gguf or default_model_path()).resolve()
    threads = [int(t) for t in args.threads.split(",")]
    engines = args.engines.split(",")
    prompt = prompt_text(package, args.prefill)

    handler = type("H", (Handler,), {"gguf": gguf, "package": package, "wllama": wllama})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(ROOT)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    page_url = f"{base}/scripts/bench_cpu_browser/index.html"
    package_url = "/pkg/"
    results: list[dict[str, Any]] = []
    load_before = loadavg()
    print(f"machine: {os.cpu_count()} cores, load {load_before}; chromium {CHROMIUM}", flush=True)
    print(f"package {package.name}, gguf {gguf.name}, wllama {wllama_version}, prefill {args.prefill}, "
          f"decode {args.decode}", flush=True)
    prefill_tokens = args.prefill
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            for rep in range(args.repeats):
                for n in threads:
                    for engine in engines:
                        page = browser.new_page()
                        page.on("console", print_errors)
                        page.goto(page_url)
                        page.wait_for_function("document.title === 'ready'")
                        if engine == "wllama":
                            r = page.evaluate("o => benchWllama(o)", {
                                "ggufUrl": "/gguf/model.gguf", "wllamaBase": "/wllama/",
                                "wllamaMajor": int(wllama_version.split(".")[0]), "prompt": prompt,
                                "decode": args.decode, "threads": n, "context": args.context})
                            prefill_tokens = r["prefillTokens"]
                        else:
                            # wllama's count of the same text (it may add a BOS); 13 ids to start with
                            ids = [(i * 7919 + 13) % 49152 for i in range(prefill_tokens)]
                            r = page.evaluate("o => benchOurs(o)", {
                                "packageUrl": package_url, "ids": ids, "decode": args.decode, "threads": n,
                                "context": args.context})
                        page.close()
                        r.update(repeat=rep, requestedThreads=n)
                        results.append(r)
                        print(f"{engine:7s} threads {n} (ran {r['threads']}): prefill {r['prefillTokens']} tok "
                              f"{r['prefillTps']:8.1f} tok/s  decode {r['decodeTokens']} tok {r['decodeTps']:7.1f} "
                              f"tok/s  isolated={r['crossOriginIsolated']}", flush=True)
            browser.close()
    finally:
        server.shutdown()
    load_after = loadavg()
    print(f"load after: {load_after}")
    summary: dict[str, Any] = {}
    for n in threads:
        med = {e: {k: statistics.median(r[k] for r in results if r["engine"] == e and r["requestedThreads"] == n)
                   for k in ("prefillTps", "decodeTps")} for e in engines}
        summary[str(n)] = med
        line = "  ".join(f"{e} prefill {m['prefillTps']:.1f} decode {m['decodeTps']:.1f}" for e, m in med.items())
        if "ours" in med and "wllama" in med:
            line += (f"  ours/wllama prefill {med['ours']['prefillTps'] / med['wllama']['prefillTps']:.2f}x "
                     f"decode {med['ours']['decodeTps'] / med['wllama']['decodeTps']:.2f}x")
        print(f"median, {n} thread(s): {line}")
    if args.json:
        args.json.write_text(json.dumps({
            "results": results, "summary": summary, "load_before": load_before, "load_after": load_after,
            "wllama": wllama_version, "prefill": args.prefill, "decode": args.decode}, indent=1))


if __name__ == "__main__":
    main()
