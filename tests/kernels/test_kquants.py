"""matvec_kq.wgsl, matmul_kq.wgsl, embed_kq.wgsl: llama.cpp's Q4_K / Q5_K / Q6_K carried exactly (storages q4k, q5k,
q6k), against numpy on model_prep.kquants.dequantize of random valid GGUF blocks (model_prep.kquants.random_blocks):
decode matvec (plain, residual add, RMSNorm folded in, gate + up + SwiGLU), prefill matmul and the embedding lookup,
in every tuning kernels.json declares, odd row counts, 256 and 768 columns, chunks written at a row offset."""

from __future__ import annotations

import numpy as np
import pytest
import wgpu

from model_prep import kquants

from .gpu import Gpu
from .kernels import embed_grid, matmul_grid, matvec_grid, params, tuning, tunings
from .reference import EPS32, QTensor, assert_close, dot_tolerance, rmsnorm, silu

MATVEC, MATMUL, EMBED = "matvec_kq.wgsl", "matmul_kq.wgsl", "embed_kq.wgsl"
GGML = {"q4k": "Q4_K", "q5k": "Q5_K", "q6k": "Q6_K"}
KTYPE = {"q4k": 4, "q5k": 5, "q6k": 6}
STORAGES = sorted(GGML)
SENTINEL = -7.25
MATVEC_TUNINGS = {name: (t["TX"], t["TY"], t["R"]) for name, t in tunings(MATVEC).items()}
MATVEC_TUNINGS["narrow"] = (12, 2, 3)  # a non-power-of-two row split, rows never a whole workgroup
MATMUL_TUNINGS = {**tunings(MATMUL), "8x4 1x1": {"WX": 8, "WY": 4, "RV": 1, "TV": 1}}


def random_ktensor(rng: np.random.Generator, storage: str, rows: int, cols: int) -> QTensor:
    """Random valid GGUF blocks packed into the storage's planes, their exact values, and per element the magnitude
    of the constant term the kernels add through sum(x) (q4k, q5k: dmin * m; q6k: none, its codes are centred)."""
    planes = kquants.pack(GGML[storage], kquants.random_blocks(GGML[storage], rows, cols, rng), rows, cols)
    w = kquants.dequantize(storage, planes, rows, cols).astype(np.float64)
    if storage == "q6k":
        offset = np.zeros_like(w)
    else:
        sup = planes["super"].reshape(rows, cols // 256, 5)
        dmin = (sup[..., 0] >> np.uint32(16)).astype(np.uint16).view(np.float16).astype(np.float64)
        mins = np.ascontiguousarray(sup[..., 3:5]).view(np.uint8).astype(np.float64)  # [rows, supers, 8]
        offset = np.repeat((dmin[..., None] * mins).reshape(rows, -1), 32, axis=1)
    return QTensor(storage, planes, w, offset)


def planes(gpu: Gpu, q: QTensor) -> list[wgpu.GPUBuffer]:
    """Bindings 0-2 of the kernels: qweight, qhigh (q4k has none: its qweight again, never read), super."""
    qweight = gpu.storage(q.planes["qweight"])
    qhigh = gpu.storage(q.planes["qhigh"]) if "qhigh" in q.planes else qweight
    return [qweight, qhigh, gpu.storage(q.planes["super"])]


def _mv(storage: str, t: tuple[int, int, int], **extra: float) -> dict[str, float]:
    return {"KTYPE": KTYPE[storage], "TX": t[0], "TY": t[1], "R": t[2], **extra}


@pytest.mark.parametrize("tuning_name", sorted(MATVEC_TUNINGS))
@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("rows,cols", [(37, 256), (9, 768), (1, 256)])
def test_matvec_kq(gpu: Gpu, rng: np.random.Generator, tuning_name: str, storage: str, rows: int, cols: int) -> None:
    t = MATVEC_TUNINGS[tuning_name]
    q = random_ktensor(rng, storage, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    offset = 5  # as if this were the second chunk of a tensor
    y = gpu.storage(np.full(offset + rows + 3, SENTINEL, np.float32))
    p = gpu.uniform(params(MATVEC, rows=rows, cols=cols, row_offset=offset, eps=0.0))
    gpu.run(gpu.pipeline(MATVEC, "main", _mv(storage, t)), [*planes(gpu, q), gpu.storage(x), y, p],
            matvec_grid(rows, t[1], t[2]))
    got = gpu.read(y)
    assert_close(got[offset:offset + rows], q.w @ x.astype(np.float64), dot_tolerance(q, x), f"{storage} {rows}x{cols}")
    assert np.all(got[:offset] == SENTINEL) and np.all(got[offset + rows:] == SENTINEL), "wrote outside the chunk"


@pytest.mark.parametrize("storage", STORAGES)
def test_matvec_kq_accumulate(gpu: Gpu, rng: np.random.Generator, storage: str) -> None:
    rows, cols = 70, 512
    t = MATVEC_TUNINGS["gpu"]
    q = random_ktensor(rng, storage, rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    h = rng.standard_normal(rows).astype(np.float32)
    y = gpu.storage(h)
    p = gpu.uniform(params(MATVEC, rows=rows, cols=cols, row_offset=0, eps=0.0))
    gpu.run(gpu.pipeline(MATVEC, "main", _mv(storage, t, ACCUMULATE=True)), [*planes(gpu, q), gpu.storage(x), y, p],
            matvec_grid(rows, t[1], t[2]))
    want = h + q.w @ x.astype(np.float64)
    assert_close(gpu.read(y), want, dot_tolerance(q, x) + EPS32 * np.abs(want), f"{storage} accumulate")


@pytest.mark.parametrize("tuning_name", sorted(MATVEC_TUNINGS))
@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("rows,cols", [(45, 768), (7, 256)])
def test_matvec_kq_norm(gpu: Gpu, rng: np.random.Generator, tuning_name: str, storage: str, rows: int,
                        cols: int) -> None:
    """main_norm: y = W (rmsnorm(x) * norm_w) (the attention / final norm folded into q, k, v and the LM head)."""
    t = MATVEC_TUNINGS[tuning_name]
    q = random_ktensor(rng, storage, rows, cols)
    x = (rng.standard_normal(cols) * 3.0).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    eps = 1e-5
    y = gpu.storage(np.full(rows + 2, SENTINEL, np.float32))
    p = gpu.uniform(params(MATVEC, rows=rows, cols=cols, row_offset=2, eps=eps))
    gpu.run(gpu.pipeline(MATVEC, "main_norm", _mv(storage, t)),
            [*planes(gpu, q), gpu.storage(x), gpu.storage(nw), y, p], matvec_grid(rows, t[1], t[2]))
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    want = q.w @ xn
    got = gpu.read(y)
    assert_close(got[2:], want, dot_tolerance(q, xn) + 8 * EPS32 * np.abs(want), f"{storage} norm {rows}x{cols}")
    assert np.all(got[:2] == SENTINEL)


@pytest.mark.parametrize("tuning_name", sorted(MATVEC_TUNINGS))
@pytest.mark.parametrize("rows,cols", [(83, 256), (5, 768)])
def test_matvec_kq_swiglu(gpu: Gpu, rng: np.random.Generator, tuning_name: str, rows: int, cols: int) -> None:
    """main_swiglu (q4k gate and up): y = silu(Wg x') * (Wu x'), x' = rmsnorm(x) * norm_w."""
    t = MATVEC_TUNINGS[tuning_name]
    gate = random_ktensor(rng, "q4k", rows, cols)
    up = random_ktensor(rng, "q4k", rows, cols)
    x = rng.standard_normal(cols).astype(np.float32)
    nw = rng.uniform(0.5, 1.5, cols).astype(np.float32)
    eps = 1e-6
    y = gpu.storage(np.full(rows + 1, SENTINEL, np.float32))
    p = gpu.uniform(params(MATVEC, rows=rows, cols=cols, row_offset=1, eps=eps))
    g_planes, u_planes = planes(gpu, gate), planes(gpu, up)
    buffers = [g_planes[0], None, g_planes[2], gpu.storage(x), gpu.storage(nw), u_planes[0], None, u_planes[2], y, p]
    gpu.run(gpu.pipeline(MATVEC, "main_swiglu", _mv("q4k", t)), buffers, matvec_grid(rows, t[1], t[2]))
    xn = rmsnorm(x.astype(np.float64), nw.astype(np.float64), eps)
    g, u = gate.w @ xn, up.w @ xn
    want = silu(g) * u
    tol_g = dot_tolerance(gate, xn) + 8 * EPS32 * np.abs(g)
    tol_u = dot_tolerance(up, xn) + 8 * EPS32 * np.abs(u)
    tol = 1.1 * np.abs(u) * tol_g + np.abs(silu(g)) * tol_u + 8 * EPS32 * np.abs(want)
    got = gpu.read(y)
    assert_close(got[1:], want, tol, "q4k swiglu")
    assert got[0] == SENTINEL


@pytest.mark.parametrize("tuning_name", sorted(MATMUL_TUNINGS))
@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("rows,cols,tokens", [(37, 256, 1), (70, 768, 5), (3, 256, 33)])
def test_matmul_kq(gpu: Gpu, rng: np.random.Generator, tuning_name: str, storage: str, rows: int, cols: int,
                   tokens: int) -> None:
    t = MATMUL_TUNINGS[tuning_name]
    q = random_ktensor(rng, storage, rows, cols)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    offset, stride = 2, rows + 5  # this chunk is rows [2, 2 + rows) of a wider output
    y = gpu.storage(np.full(tokens * stride, SENTINEL, np.float32))
    p = gpu.uniform(params(MATMUL, rows=rows, cols=cols, row_offset=offset, tokens=tokens, y_stride=stride))
    gpu.run(gpu.pipeline(MATMUL, "main", {"KTYPE": KTYPE[storage], **t}), [*planes(gpu, q), gpu.storage(x), y, p],
            matmul_grid(rows, tokens, t))
    got = gpu.read(y).reshape(tokens, stride)
    want = x.astype(np.float64) @ q.w.T
    # the kernel sums dequantized weights times x: no separate sum(x) term, so no offset in the tolerance
    tol = dot_tolerance(QTensor(storage, q.planes, q.w, np.zeros_like(q.w)), x)
    assert_close(got[:, offset:offset + rows], want, tol, f"{storage} {rows}x{cols} T={tokens}")
    assert np.all(np.delete(got, np.s_[offset:offset + rows], axis=1) == SENTINEL), "wrote outside the chunk"


@pytest.mark.parametrize("storage", STORAGES)
def test_matmul_kq_accumulate(gpu: Gpu, rng: np.random.Generator, storage: str) -> None:
    t = MATMUL_TUNINGS["gpu"]
    rows, cols, tokens = 45, 512, 11
    q = random_ktensor(rng, storage, rows, cols)
    x = rng.standard_normal((tokens, cols)).astype(np.float32)
    h = rng.standard_normal((tokens, rows)).astype(np.float32)
    y = gpu.storage(h)
    p = gpu.uniform(params(MATMUL, rows=rows, cols=cols, row_offset=0, tokens=tokens, y_stride=rows))
    gpu.run(gpu.pipeline(MATMUL, "main", {"KTYPE": KTYPE[storage], **t, "ACCUMULATE": True}),
            [*planes(gpu, q), gpu.storage(x), y, p], matmul_grid(rows, tokens, t))
    want = h + x.astype(np.float64) @ q.w.T
    tol = dot_tolerance(QTensor(storage, q.planes, q.w, np.zeros_like(q.w)), x) + EPS32 * np.abs(want)
    assert_close(gpu.read(y).reshape(tokens, rows), want, tol, f"{storage} accumulate")


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("cols", [256, 768])
def test_embed_kq(gpu: Gpu, rng: np.random.Generator, storage: str, cols: int) -> None:
    """Rows of a table split into two chunks; each value as docs/FORMAT.md orders its arithmetic, so equal to
    kquants.dequantize (and gguf's) bit for bit."""
    vocab, split = 41, 20
    table = random_ktensor(rng, storage, vocab, cols)
    ids = np.array([0, 19, 20, 40, 7, 20, 39], np.uint32)
    out = gpu.storage(np.full(len(ids) * cols, SENTINEL, np.float32))
    wg = tuning(EMBED)["WG"]
    pipe = gpu.pipeline(EMBED, "main", {"KTYPE": KTYPE[storage], "WG": wg})
    id_buf = gpu.storage(ids)
    for start, stop in ((0, split), (split, vocab)):
        chunk = QTensor(storage, kquants.slice_rows(storage, table.planes, cols, start, stop), table.w, table.offset)
        p = gpu.uniform(params(EMBED, row_start=start, rows=stop - start, cols=cols, tokens=len(ids)))
        gpu.run(pipe, [id_buf, *planes(gpu, chunk), out, p], embed_grid(cols, len(ids), 4, wg))
        got = gpu.read(out).reshape(len(ids), cols)
        done = ids < stop
        np.testing.assert_array_equal(got[done], table.w[ids[done]].astype(np.float32))
        assert np.all(got[~done] == SENTINEL), "a chunk wrote a token that is not in it"
