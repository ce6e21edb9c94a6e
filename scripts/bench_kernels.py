"""Benchmark the q4 matvec (webgpu_shaders/matvec.wgsl, entry main) against a same-run DRAM read bound.

Not a test: it times kernels through Python wgpu on whatever adapter is best (the GPU where there is one) and prints
one line per figure, then a JSON document (also written to --json). The bound is scripts/stream_read.wgsl reading
1 GiB (20x an H100's L2) through the same API, timed the same way in the same process; a matvec's bytes (weights,
scales, x, y) per second are reported as a fraction of it. A device-to-device copy_buffer_to_buffer is printed beside
it (read + write bytes): on an H100 it moved about 850 GB/s against about 3 TB/s read, so it is no bound (it was this
script's until 2026-12-06, which is why older figures in docs/PERFORMANCE.md exceed 100%).

Timing: each figure is (t(2n) - t(n)) / n, with t(k) the best of a few wall-clock runs of one submit of k operations
(submit to on_submitted_work_done), which cancels the fixed submit and wake-up cost. Matvec dispatches rotate over
enough weight copies to exceed the GPU's L2 cache, and each writes its own y, so no dispatch waits on another.

    python scripts/bench_kernels.py                    # default tunables, the four shapes below
    python scripts/bench_kernels.py --sweep --json o.json  # also a grid of (TX, TY, R, UNPACK_CVT) overrides
    python scripts/bench_kernels.py --shapes 4096x4096,49152x576xq8 --shader matvec.wgsl --shader /tmp/old.wgsl
                                                       # two kernel files, same run, same buffers
    python scripts/bench_kernels.py --shapes 8192x8192,8192x8192xq4k,8192x8192xq6k --config 128,1,2,0
                                                       # K-quants (matvec_kq.wgsl, random valid GGUF blocks) beside q4
    python scripts/bench_kernels.py --matmul 1536x1536,8960x1536,1536x8960 --tokens 128,256 \
        --matmul-config 16,16,2,1 --matmul-shader matmul.wgsl --matmul-shader ../build/old/webgpu_shaders/matmul.wgsl
                                                       # prefill matmul (matmul.wgsl) at real shapes: us, TFLOP/s
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_prep import kquants, quant  # noqa: E402
from tests.kernels.gpu import Gpu  # noqa: E402
from tests.kernels.kernels import matvec_grid, params  # noqa: E402

SHAPES = [(4096, 4096), (11008, 4096), (14336, 4096), (151936, 896)]  # (rows, cols): q4 weights
EXTRA = [(49152, 576, "q8")]  # SmolLM2's q8 embedding used as its LM head
Tuning = tuple[int, int, int, int]  # matvec.wgsl overrides (TX, TY, R, UNPACK_CVT)
DEFAULT: Tuning = (32, 4, 2, 0)  # matvec.wgsl's defaults
SWEEP: list[Tuning] = [(tx, ty, r, cvt) for cvt in (0, 1) for tx in (32, 16, 8) for ty in (1, 2, 4, 8)
                       for r in (1, 2, 4) if tx * ty >= 32]
COPY_BYTES = 256 << 20  # per copy; read and written
L2_BYTES = 64 << 20  # larger than any current GPU's L2 (H100: 50 MiB); weights rotate over >= 4x this
BATCH_BYTES = 1 << 30  # about this much traffic per timed batch


K_TYPES = {"q4k": ("Q4_K", 4), "q5k": ("Q5_K", 5), "q6k": ("Q6_K", 6)}  # storage -> (GGUF type, KTYPE)


def random_planes(rng: np.random.Generator, storage: str, rows: int, cols: int) -> quant.Planes:
    """Planes of the right sizes (docs/FORMAT.md) with random codes and modest f16 scales; speed does not depend on
    the values, and quantizing 136M real weights would take longer than the benchmark. K storages: random valid GGUF
    blocks (model_prep.kquants.random_blocks) packed as prepare packs them."""
    if storage in K_TYPES:
        ggml = K_TYPES[storage][0]
        return kquants.pack(ggml, kquants.random_blocks(ggml, rows, cols, rng), rows, cols)
    words = rows * cols // (8 if storage == "q4" else 4)
    qweight = rng.integers(0, 1 << 32, words, dtype=np.uint64).astype(np.uint32)
    scale = rng.uniform(0.001, 0.01, rows * cols // 32).astype(np.float16)
    if storage == "q4":  # (scale, min) per word, min = -8 scale as for GGUF Q4_0
        minimum = (-8 * scale.astype(np.float32)).astype(np.float16)
        words16 = np.stack([scale, minimum], axis=1).reshape(-1)
    else:  # two scales per word, padded to an even count
        words16 = np.concatenate([scale, np.zeros(scale.size % 2, np.float16)])
    return {"qweight": qweight, "scales": words16.view(np.uint32)}


def per_op_seconds(gpu: Gpu, encode: Callable[[int], Callable[[], Any]], n: int, trials: int = 3) -> float:
    """(t(2n) - t(n)) / n, t(k) the best over trials of submitting one command buffer of k operations until the GPU
    is done. Command buffers are single-use, so each trial encodes a fresh one before its clock starts."""
    fence = gpu.zeros(4)

    def timed(k: int) -> float:
        command_buffer = encode(k)()
        t0 = time.perf_counter()
        gpu.device.queue.submit([command_buffer])
        # wait by reading 4 bytes back (queue.on_submitted_work_done_sync is broken in wgpu 0.32.0): a constant
        # cost, like the submit, that the difference of two batch sizes removes
        gpu.device.queue.read_buffer(fence)
        return time.perf_counter() - t0

    timed(n)  # warm up: first-use transitions, clocks
    t1 = min(timed(n) for _ in range(trials))
    t2 = min(timed(2 * n) for _ in range(trials))
    return max(t2 - t1, 1e-12) / n


def copy_bound(gpu: Gpu) -> dict[str, float]:
    src, dst = gpu.zeros(COPY_BYTES), gpu.zeros(COPY_BYTES)

    def encode(k: int) -> Callable[[], Any]:
        def make() -> Any:
            enc = gpu.device.create_command_encoder()
            for _ in range(k):
                enc.copy_buffer_to_buffer(src, 0, dst, 0, COPY_BYTES)
            return enc.finish()
        return make

    n = max(4, BATCH_BYTES // (2 * COPY_BYTES))
    seconds = per_op_seconds(gpu, encode, n)
    return {"bytes": COPY_BYTES, "us": seconds * 1e6, "GBps": 2 * COPY_BYTES / seconds / 1e9}


STREAM_BYTES = 1 << 30  # read per pass of the bound
STREAM_GROUPS = 8192  # workgroups of 256 per dispatch


def stream_bound(gpu: Gpu) -> dict[str, float]:
    """scripts/stream_read.wgsl over STREAM_BYTES, in bindings of at most the device's storage binding limit."""
    chunk = min(STREAM_BYTES, gpu.device.limits["max-storage-buffer-binding-size"]) & ~0xFFFF
    buffers = [gpu.zeros(chunk) for _ in range(math.ceil(STREAM_BYTES / chunk))]
    sink = gpu.zeros(1024)
    pipe = gpu.pipeline("../scripts/stream_read.wgsl")
    groups = [gpu.bind(pipe, [b, sink]) for b in buffers]

    def encode(k: int) -> Callable[[], Any]:
        def make() -> Any:
            enc = gpu.device.create_command_encoder()
            cpass = enc.begin_compute_pass()
            cpass.set_pipeline(pipe)
            for _ in range(k):
                for g in groups:
                    cpass.set_bind_group(0, g)
                    cpass.dispatch_workgroups(STREAM_GROUPS)
            cpass.end()
            return enc.finish()
        return make

    read = chunk * len(buffers)
    seconds = per_op_seconds(gpu, encode, 4)
    return {"bytes": read, "us": seconds * 1e6, "GBps": read / seconds / 1e9}


class MatvecCase:
    """One weight shape on the GPU: enough copies of its planes to defeat the L2 cache, x, and per-dispatch y."""

    def __init__(self, gpu: Gpu, rng: np.random.Generator, storage: str, rows: int, cols: int) -> None:
        self.gpu, self.storage, self.rows, self.cols = gpu, storage, rows, cols
        self.planes = random_planes(rng, storage, rows, cols)
        weight_bytes = sum(p.nbytes for p in self.planes.values())
        self.bytes = weight_bytes + 4 * cols + 4 * rows  # read weights, scales and x; write y
        copies = max(2, math.ceil(4 * L2_BYTES / weight_bytes))
        self.weights = [self._upload() for _ in range(copies)]
        self.x_host = rng.standard_normal(cols).astype(np.float32)
        self.x = gpu.storage(self.x_host)
        self.n = min(400, max(8, BATCH_BYTES // self.bytes))  # dispatches per timed batch
        self.ys = [gpu.zeros(4 * rows) for _ in range(2 * self.n)]
        self.params = gpu.uniform(params("matvec.wgsl", rows=rows, cols=cols, row_offset=0, eps=0.0))

    def _upload(self) -> list[Any]:
        """The kernel's weight bindings: q4/q8 [qweight, scales]; K storages [qweight, qhigh (q4k: qweight again, not
        read), super] (app/engine/gpu/weights.js kernelPlanes)."""
        if self.storage in K_TYPES:
            qweight = self.gpu.storage(self.planes["qweight"])
            qhigh = self.gpu.storage(self.planes["qhigh"]) if "qhigh" in self.planes else qweight
            return [qweight, qhigh, self.gpu.storage(self.planes["super"])]
        return [self.gpu.storage(self.planes["qweight"]), self.gpu.storage(self.planes["scales"])]

    def check(self, y: npt.NDArray[np.float32]) -> float:
        """Largest |error| / |scale of y| over the first and last 32 rows against the numpy reference."""
        worst = 0.0
        for start in (0, max(0, self.rows - 32)):
            stop = min(self.rows, start + 32)
            chunk = quant.slice_rows(self.storage, self.planes, self.cols, start, stop)
            want = quant.dequantize(self.storage, chunk, stop - start, self.cols).astype(np.float64) @ self.x_host
            worst = max(worst, float(np.max(np.abs(y[start:stop] - want)) / (np.max(np.abs(want)) + 1e-30)))
        return worst

    def run(self, tuning: Tuning, shader: str = "matvec.wgsl") -> dict[str, Any]:
        tx, ty, r, cvt = tuning
        constants: dict[str, float]
        if self.storage in K_TYPES:  # matvec_kq.wgsl (same Params; no UNPACK_CVT)
            shader = "matvec_kq.wgsl" if shader == "matvec.wgsl" else shader
            constants = {"KTYPE": K_TYPES[self.storage][1], "TX": tx, "TY": ty, "R": r}
        else:
            constants = {"QBITS": 4 if self.storage == "q4" else 8, "TX": tx, "TY": ty, "R": r, "UNPACK_CVT": cvt}
        pipe = self.gpu.pipeline(shader, "main", constants)
        groups = [self.gpu.bind(pipe, [*w, self.x, y, self.params])
                  for w, y in zip(self.weights * (len(self.ys) // len(self.weights) + 1), self.ys, strict=False)]
        grid = matvec_grid(self.rows, ty, r)

        def encode(k: int) -> Callable[[], Any]:
            def make() -> Any:
                enc = self.gpu.device.create_command_encoder()
                cpass = enc.begin_compute_pass()
                cpass.set_pipeline(pipe)
                for i in range(k):
                    cpass.set_bind_group(0, groups[i])
                    cpass.dispatch_workgroups(*grid)
                cpass.end()
                return enc.finish()
            return make

        seconds = per_op_seconds(self.gpu, encode, self.n)
        error = self.check(self.gpu.read(self.ys[0]))
        return {"shader": shader, "storage": self.storage, "rows": self.rows, "cols": self.cols,
                "TX": tx, "TY": ty, "R": r, "CVT": cvt, "bytes": self.bytes,
                "us": seconds * 1e6, "GBps": self.bytes / seconds / 1e9, "rel_error": error}


MatmulTuning = dict[str, int]


def matmul_overrides(shader: str, config: tuple[int, ...]) -> tuple[MatmulTuning, tuple[int, int, int]]:
    """matmul.wgsl overrides from "WX,WY,RV,TV", and the grid function's tile sizes (rows, tokens) per workgroup. A
    kernel file without RV / TV (matmul.wgsl before 2026-12-06: 4 rows x 2 tokens per thread) takes WX, WY only."""
    text = (ROOT / "webgpu_shaders" / shader).read_text()
    wx, wy, rv, tv = config
    if "override RV" not in text:
        return {"WX": wx, "WY": wy}, (4 * wx, 2 * wy, 0)
    return {"WX": wx, "WY": wy, "RV": rv, "TV": tv}, (4 * rv * wx, 4 * tv * wy, 0)


class MatmulCase:
    """One prefill projection: enough copies of the weight planes to exceed L2, X [tokens, cols], a Y per copy."""

    def __init__(self, gpu: Gpu, rng: np.random.Generator, storage: str, rows: int, cols: int, tokens: int) -> None:
        self.gpu, self.storage, self.rows, self.cols, self.tokens = gpu, storage, rows, cols, tokens
        self.planes = random_planes(rng, storage, rows, cols)
        weight_bytes = sum(p.nbytes for p in self.planes.values())
        copies = max(2, math.ceil(4 * L2_BYTES / weight_bytes))
        self.weights = [(gpu.storage(self.planes["qweight"]), gpu.storage(self.planes["scales"]))
                        for _ in range(copies)]
        self.x_host = rng.standard_normal((tokens, cols)).astype(np.float32)
        self.x = gpu.storage(self.x_host)
        self.ys = [gpu.zeros(4 * rows * tokens) for _ in range(copies)]
        self.params = gpu.uniform(params("matmul.wgsl", rows=rows, cols=cols, row_offset=0, tokens=tokens,
                                         y_stride=rows))
        self.flops = 2 * tokens * rows * cols
        self.n = min(200, max(4, int(2e11 // self.flops)))  # dispatches per timed batch

    def run(self, shader: str, config: tuple[int, ...]) -> dict[str, Any]:
        overrides, (br, bt, _) = matmul_overrides(shader, config)
        qbits = 4 if self.storage == "q4" else 8
        pipe = self.gpu.pipeline(shader, "main", {"QBITS": qbits, **overrides})
        groups = [self.gpu.bind(pipe, [w, s, self.x, y, self.params])
                  for (w, s), y in zip(self.weights, self.ys, strict=True)]
        grid = (math.ceil(self.rows / br), math.ceil(self.tokens / bt), 1)

        def encode(k: int) -> Callable[[], Any]:
            def make() -> Any:
                enc = self.gpu.device.create_command_encoder()
                cpass = enc.begin_compute_pass()
                cpass.set_pipeline(pipe)
                for i in range(k):
                    cpass.set_bind_group(0, groups[i % len(groups)])
                    cpass.dispatch_workgroups(*grid)
                cpass.end()
                return enc.finish()
            return make

        seconds = per_op_seconds(self.gpu, encode, self.n)
        y = self.gpu.read(self.ys[0]).reshape(self.tokens, self.rows)[:4, :64]
        chunk = quant.slice_rows(self.storage, self.planes, self.cols, 0, 64)
        want = self.x_host[:4].astype(np.float64) @ quant.dequantize(self.storage, chunk, 64, self.cols).T
        error = float(np.max(np.abs(y - want)) / (np.max(np.abs(want)) + 1e-30))
        return {"shader": shader, "storage": self.storage, "rows": self.rows, "cols": self.cols, "tokens": self.tokens,
                **overrides, "workgroups": grid[0] * grid[1], "us": seconds * 1e6,
                "TFLOPs": self.flops / seconds / 1e12, "rel_error": error}


def matmul_main(args: argparse.Namespace, gpu: Gpu, rng: np.random.Generator, result: dict[str, Any]) -> None:
    configs = [tuple(int(v) for v in c.split(",")) for c in args.matmul_config] or [(16, 16, 2, 1)]
    shaders = args.matmul_shader or ["matmul.wgsl"]
    result["matmul"] = []
    for shape in args.matmul.split(","):
        rows, cols, *q = shape.split("x")
        for tokens in (int(t) for t in args.tokens.split(",")):
            case = MatmulCase(gpu, rng, q[0] if q else "q4", int(rows), int(cols), tokens)
            seen = set()
            for shader in shaders:
                for config in configs:
                    overrides, _ = matmul_overrides(shader, config)
                    key = (shader, tuple(sorted(overrides.items())))
                    if key in seen:
                        continue
                    seen.add(key)
                    fig = case.run(shader, config)
                    result["matmul"].append(fig)
                    print(f"matmul {shader} {fig['storage']} {rows}x{cols} T={tokens} {overrides} "
                          f"({fig['workgroups']} workgroups): {fig['us']:.1f} us, {fig['TFLOPs']:.2f} TFLOP/s "
                          f"(rel err {fig['rel_error']:.1e})", flush=True)
                    if args.json:
                        args.json.write_text(json.dumps(result, indent=1))
            del case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", action="store_true", help="also time a grid of (TX, TY, R, UNPACK_CVT) overrides")
    ap.add_argument("--config", action="append", default=[], help="TX,TY,R,UNPACK_CVT to time (repeatable)")
    ap.add_argument("--shapes", default="", help="ROWSxCOLS,... instead of the default shapes")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--shader", action="append", default=[],
                    help="kernel file(s) to time, relative to webgpu_shaders/ (repeatable; default matvec.wgsl): "
                         "compare a variant with the current kernel in the same run")
    ap.add_argument("--matmul", default="", help="ROWSxCOLS[xq8],...: time the prefill matmul at these shapes "
                    "instead of the matvec")
    ap.add_argument("--tokens", default="128,256", help="tokens per matmul pass (comma-separated)")
    ap.add_argument("--matmul-config", action="append", default=[], help="WX,WY,RV,TV of matmul.wgsl (repeatable)")
    ap.add_argument("--matmul-shader", action="append", default=[],
                    help="matmul kernel file(s) relative to webgpu_shaders/ (repeatable; default matmul.wgsl)")
    args = ap.parse_args()

    gpu = Gpu(prefer_gpu=True)
    rng = np.random.default_rng(0)
    tunings: list[Tuning] = [DEFAULT]
    for c in args.config:
        tx, ty, r, cvt = (int(v) for v in c.split(","))
        tunings.append((tx, ty, r, cvt))
    if args.sweep:
        tunings += [t for t in SWEEP if t not in tunings]
    cases = [(r, c, "q4") for r, c in SHAPES] + EXTRA
    if args.shapes:
        cases = [(int(r), int(c), q[0] if q else "q4")
                 for r, c, *q in (s.split("x") for s in args.shapes.split(","))]

    result: dict[str, Any] = {"date": datetime.date.today().isoformat(), "adapter": gpu.description,
                              "command": " ".join(sys.argv), "matvec": []}
    copy = copy_bound(gpu)
    result["copy"] = copy
    bound = stream_bound(gpu)
    result["stream_read"] = bound
    print(f"adapter: {gpu.description}", flush=True)
    print(f"streaming read of {bound['bytes'] / 2**30:.0f} GiB: {bound['us']:.0f} us, {bound['GBps']:.0f} GB/s (the "
          f"bound); copy_buffer_to_buffer {COPY_BYTES >> 20} MiB: {copy['GBps']:.0f} GB/s read+write", flush=True)
    if args.matmul:
        matmul_main(args, gpu, rng, result)
        print(json.dumps(result))
        return
    for rows, cols, storage in cases:
        case = MatvecCase(gpu, rng, storage, rows, cols)
        for shader, tuning in [(sh, t) for t in tunings for sh in args.shader or ["matvec.wgsl"]]:
            fig = case.run(tuning, shader)
            fig["of_copy"] = fig["GBps"] / copy["GBps"]
            fig["of_read_bound"] = fig["GBps"] / bound["GBps"]
            result["matvec"].append(fig)
            print(f"{fig['shader']} {storage} {rows}x{cols} "
                  f"TX={fig['TX']} TY={fig['TY']} R={fig['R']} CVT={fig['CVT']}: "
                  f"{fig['us']:.1f} us, "
                  f"{fig['GBps']:.0f} GB/s, {100 * fig['of_read_bound']:.1f}% of the read bound "
                  f"({100 * fig['of_copy']:.1f}% of copy; rel err {fig['rel_error']:.1e})",
                  flush=True)
            if args.json:
                args.json.write_text(json.dumps(result, indent=1))
        del case
    print(json.dumps(result))


if __name__ == "__main__":
    main()
