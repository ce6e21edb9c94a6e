"""Load test for `fieldllm serve` on loopback: N concurrent streaming clients against the numpy engine.

Prints one line per figure, then all of them as one JSON line. The bounds to compare with are measured in the same
run on the same engine object, with no server in between: the reference engine answering the same requests one after
another (prefill included), and its single-stream decode speed. The server runs one generation at a time per model,
so its aggregate throughput can at best reach the first; the ratios say what the HTTP layer and the queue cost.

Only 127.0.0.1 is contacted; the number of requests is fixed (--clients) and the whole run is bounded (--timeout).

    .venv/bin/python scripts/bench_serve.py [--package DIR] [--clients 16] [--max-tokens 32]

``--scenario busy`` measures instead what a small request waits when the server was just made busy, against the same
small request on the idle server in the same run (issue 15: within 1.5x): after a client hangs up 3 s into the
prefill of a ~3,000-token prompt, and while 16 clients send ~1 MB prompts at once (all refused, 400).

    .venv/bin/python scripts/bench_serve.py --scenario busy [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # app/ and model_prep/ from the checkout

from bench_common import QUESTIONS  # noqa: E402

from app.server.app import create_app  # noqa: E402
from app.server.local import LocalBackend  # noqa: E402
from app.server.settings import Settings  # noqa: E402
from model_prep.reference import Engine, load  # noqa: E402


@dataclass
class Stream:
    start: float
    first: float | None = None  # first content token
    last: float | None = None  # last content token
    tokens: int = 0  # completion tokens (the server's usage count)
    ok: bool = False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def reference_decode(engine: Engine, max_tokens: int) -> float:
    """Tokens per second of the engine alone, decode only (first to last token), best of two questions."""
    best = 0.0
    for question in QUESTIONS[:2]:
        marks = []  # (time, tokens so far) at each chunk that carries tokens
        tokens = 0
        for chunk in engine.stream([{"role": "user", "content": question}], max_tokens=max_tokens,
                                   temperature=0.0):
            if chunk.token_ids:
                tokens += len(chunk.token_ids)
                marks.append((time.perf_counter(), tokens))
        if len(marks) > 1:
            (t0, n0), (t1, n1) = marks[0], marks[-1]
            best = max(best, (n1 - n0) / (t1 - t0))
    return best


def reference_serial(engine: Engine, clients: int, max_tokens: int) -> float:
    """Tokens per second of the engine alone answering the same requests one after another, prefill included: what
    the server, which also runs one generation at a time, could reach with zero overhead."""
    start, tokens = time.perf_counter(), 0
    for i in range(clients):
        done = engine.generate([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], max_tokens=max_tokens,
                               temperature=0.0)
        tokens += done.usage.completion_tokens
    return tokens / (time.perf_counter() - start)


async def client(url: str, question: str, max_tokens: int) -> Stream:
    s = Stream(time.perf_counter())
    body = {"model": "-", "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0)) as http:
        body["model"] = (await http.get(f"{url}/v1/models")).json()["data"][0]["id"]
        async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                data = line.removeprefix("data: ")
                if not line.startswith("data: ") or data == "[DONE]":
                    s.ok = data == "[DONE]" or s.ok
                    continue
                chunk = json.loads(data)
                if chunk.get("usage"):
                    s.tokens = chunk["usage"]["completion_tokens"]
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    s.last = time.perf_counter()
                    s.first = s.first or s.last
    return s


def serve(app: object) -> tuple[uvicorn.Server, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))  # type: ignore[arg-type]
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def package_path(given: Path | None) -> Path:
    default = ROOT / "build/models/smollm2-135m-instruct"
    if not (default / "manifest.json").is_file() and (ROOT / "build/models/smollm2-135m-instruct.q4_1").is_dir():
        default = ROOT / "build/models/smollm2-135m-instruct.q4_1"
    if given is not None or (default / "manifest.json").is_file():
        return given or default
    from model_prep.plan import Options
    from model_prep.prepare import default_model_path, prepare

    return prepare(default_model_path(), Path(tempfile.mkdtemp()) / "pkg", Options())


async def run_clients(url: str, clients: int, max_tokens: int, timeout: float) -> tuple[list[Stream], float]:
    start = time.perf_counter()
    jobs = [client(url, QUESTIONS[i % len(QUESTIONS)], max_tokens) for i in range(clients)]
    streams = await asyncio.wait_for(asyncio.gather(*jobs), timeout)
    return list(streams), time.perf_counter() - start


SMALL = {"messages": [{"role": "user", "content": "How do I take a patient's pulse at the wrist?"}], "max_tokens": 16,
         "temperature": 0}


async def small_request(http: httpx.AsyncClient, url: str, model: str) -> float:
    """Seconds for one small whole answer."""
    start = time.perf_counter()
    r = await http.post(f"{url}/v1/chat/completions", json={**SMALL, "model": model})
    r.raise_for_status()
    return time.perf_counter() - start


async def after_disconnect(http: httpx.AsyncClient, url: str, model: str, long_prompt: str, hang_up_after: float) \
        -> float:
    """A client streams a long prompt and hangs up during its prefill; then the small request."""
    body = {"model": model, "messages": [{"role": "user", "content": long_prompt}], "max_tokens": 16, "stream": True}
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        await asyncio.sleep(hang_up_after)
    return await small_request(http, url, model)


async def beside_oversized(http: httpx.AsyncClient, url: str, model: str, clients: int) -> float:
    """``clients`` send ~1 MB prompts at once (each must be refused with 400); the small request goes beside them."""
    body = {"model": model, "messages": [{"role": "user", "content": "pressure " * 110_000}], "max_tokens": 16}
    big = [asyncio.create_task(http.post(f"{url}/v1/chat/completions", json=body)) for _ in range(clients)]
    await asyncio.sleep(0.2)
    waited = await small_request(http, url, model)
    statuses = [r.status_code for r in await asyncio.gather(*big)]
    if statuses != [400] * clients:
        raise RuntimeError(f"oversized prompts got {statuses}")
    return waited


async def busy_scenarios(url: str, model: str, long_prompt: str, repeat: int) -> dict[str, list[float]]:
    """Idle, after a disconnect during prefill, beside oversized prompts: interleaved, ``repeat`` times each."""
    out: dict[str, list[float]] = {"idle": [], "after_disconnect": [], "beside_oversized": []}
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0)) as http:
        await small_request(http, url, model)  # warm-up
        for _ in range(repeat):
            out["idle"].append(await small_request(http, url, model))
            out["after_disconnect"].append(await after_disconnect(http, url, model, long_prompt, 3.0))
            out["idle"].append(await small_request(http, url, model))
            out["beside_oversized"].append(await beside_oversized(http, url, model, 16))
    return out


def run_busy(engine: Engine, settings: Settings, repeat: int) -> int:
    long_prompt = " ".join(QUESTIONS * 18)  # about 3,000 tokens
    n_long = len(engine.prompt_ids([{"role": "user", "content": long_prompt}]))
    server, url = serve(create_app(settings, LocalBackend(engine, settings)))
    try:
        times = asyncio.run(busy_scenarios(url, engine.name, long_prompt, repeat))
    finally:
        server.should_exit = True
    idle = statistics.median(times["idle"])
    figures: dict[str, object] = {"long_prompt_tokens": n_long, "repeat": repeat, "blas_threads": settings.blas_threads,
                                  "idle_s": idle}
    print(f"small request (16 tokens) on the idle server: median {idle:.2f} s of {len(times['idle'])}")
    for name in ("after_disconnect", "beside_oversized"):
        median = statistics.median(times[name])
        figures[f"{name}_s"], figures[f"{name}_over_idle"] = median, median / idle
        figures[f"{name}_all_s"] = times[name]
        print(f"{name.replace('_', ' ')}: median {median:.2f} s ({median / idle:.2f}x idle); all "
              f"{', '.join(f'{t:.2f}' for t in times[name])}")
    figures["idle_all_s"] = times["idle"]
    print(json.dumps(figures))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", type=Path, help="model package (default: build/models/smollm2-135m-instruct, "
                                                 "prepared into a temporary folder if missing)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent streaming clients (default 16)")
    ap.add_argument("--max-tokens", type=int, default=32, help="answer length per client (default 32)")
    ap.add_argument("--timeout", type=float, default=300.0, help="bound on the whole load phase in seconds")
    ap.add_argument("--scenario", choices=["load", "busy"], default="load",
                    help="load: concurrent streams (default); busy: a small request after a disconnect during "
                         "prefill and beside oversized prompts, against the idle server")
    ap.add_argument("--repeat", type=int, default=3, help="busy: rounds of each measurement (default 3)")
    ap.add_argument("--blas-threads", type=int, default=Settings().blas_threads,
                    help="the server's --blas-threads (default: its default)")
    args = ap.parse_args()
    if args.scenario == "busy":
        engine = load(package_path(args.package), context=4096)
        settings = replace(Settings(), queue_size=args.clients, queue_timeout=args.timeout,
                           blas_threads=args.blas_threads, dist=Path(tempfile.mkdtemp()) / "no-app")
        return run_busy(engine, settings, args.repeat)

    engine = load(package_path(args.package), context=1024)
    before = reference_decode(engine, args.max_tokens)
    serial = reference_serial(engine, args.clients, args.max_tokens)
    settings = replace(Settings(), queue_size=args.clients, max_tokens=args.max_tokens, queue_timeout=args.timeout,
                       blas_threads=args.blas_threads, dist=Path(tempfile.mkdtemp()) / "no-app")
    server, url = serve(create_app(settings, LocalBackend(engine, settings)))
    try:
        streams, wall = asyncio.run(run_clients(url, args.clients, args.max_tokens, args.timeout))
    finally:
        server.should_exit = True
    # measured again after the load phase (same engine, server idle): the bound is the better of the two, so that
    # a busy moment on the machine during one measurement does not flatter the server's ratio
    after = reference_decode(engine, args.max_tokens)
    bound = max(before, after)
    done = [s for s in streams if s.ok and s.first is not None and s.last is not None]
    if len(done) != args.clients:
        print(f"only {len(done)} of {args.clients} streams completed", file=sys.stderr)
        return 1
    ttft = [s.first - s.start for s in done if s.first is not None]
    decode = [(s.tokens - 1) / (s.last - s.first) for s in done if s.first and s.last and s.last > s.first]
    total = sum(s.tokens for s in done)
    figures = {
        "clients": args.clients, "max_tokens": args.max_tokens, "completion_tokens": total, "wall_s": wall,
        "throughput_tok_s": total / wall,
        "ttft_p50_s": percentile(ttft, 0.5), "ttft_p95_s": percentile(ttft, 0.95),
        "decode_tok_s_per_stream_median": statistics.median(decode),
        "reference_decode_tok_s": bound, "reference_decode_before_after_tok_s": [before, after],
        "reference_serial_tok_s": serial,
        "throughput_over_serial_reference": total / wall / serial,
        "throughput_over_reference": total / wall / bound,
        "decode_over_reference": statistics.median(decode) / bound,
    }
    print(f"streams completed: {len(done)}/{args.clients} ({total} tokens in {wall:.2f} s)")
    print(f"throughput: {figures['throughput_tok_s']:.1f} tok/s "
          f"({figures['throughput_over_serial_reference']:.2f}x the reference engine answering the same requests "
          f"one after another, {figures['throughput_over_reference']:.2f}x its single-stream decode)")
    print(f"time to first token: p50 {figures['ttft_p50_s']:.2f} s, p95 {figures['ttft_p95_s']:.2f} s")
    print(f"decode per stream (median): {figures['decode_tok_s_per_stream_median']:.1f} tok/s "
          f"({figures['decode_over_reference']:.2f}x)")
    print(f"reference engine, same run: decode {bound:.1f} tok/s (before {before:.1f}, after {after:.1f}), "
          f"same requests in series {serial:.1f} tok/s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
