"""Decide, from shapes and types alone, how each tensor is stored and where every byte of the package goes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import format as fmt
from . import kquants
from .checkpoint import Checkpoint, SourceTensor
from .errors import InputError

# Source types whose values widen to f32 without loss.
_LOSSLESS_TO_F32 = {"F32", "F16", "BF16"}
# Source types carried exactly by default that Options.requantize re-quantizes instead (GGUF K-quants and Q5_0)
_REQUANTIZABLE = set(kquants.STORAGE)
_BITS = {fmt.Q4: 4, fmt.Q4K: 4, fmt.Q5K: 5, fmt.Q6K: 6}  # bits per value of the storages narrower than q8


@dataclass(frozen=True)
class Options:
    weights: str = fmt.Q4  # storage of 2-D weights that are not carried over: q4, q8 or f32 (no quantization)
    keep_8bit: tuple[str, ...] = ()  # regexes of tensor names to store at q8 instead of q4
    shard_bytes: int = fmt.DEFAULT_SHARD_BYTES
    # re-quantize GGUF Q4_K/Q5_K/Q6_K/Q5_0 into ``weights`` (a smaller package, format version < 5) instead of
    # carrying them exactly
    requantize: bool = False
    # Phi-3 longrope: the long factors on every position and context_length = max_position_embeddings, instead of
    # the short factors and a context capped at the original length (hf_source._longrope, gguf_source._longrope,
    # checkpoint.capped_context)
    long_context: bool = False

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"weights": self.weights, "keep_8bit": list(self.keep_8bit),
                                "shard_bytes": self.shard_bytes}
        if self.requantize:  # absent when off: the options (and manifests) of packages before it stay as they were
            d["requantize"] = True
        if self.long_context:  # likewise
            d["long_context"] = True
        return d


@dataclass
class ChunkPlan:
    rows: tuple[int, int]  # [start, stop) rows of the tensor (vectors: (0, 1))
    file: str = ""
    planes: dict[str, tuple[int, int]] = field(default_factory=dict)  # plane -> (offset in file, bytes)


@dataclass
class TensorPlan:
    source: SourceTensor
    storage: str
    carried: bool  # stored without changing any value (no re-quantization)
    chunks: list[ChunkPlan] = field(default_factory=list)

    @property
    def rows_cols(self) -> tuple[int, int]:
        """2-D view: vectors are one row."""
        shape = self.source.shape
        return (shape[0], shape[1]) if len(shape) == 2 else (1, shape[0])

    @property
    def nbytes(self) -> int:
        return sum(n for c in self.chunks for _, n in c.planes.values())


@dataclass
class ShardPlan:
    file: str
    size: int
    chunks: list[tuple[TensorPlan, ChunkPlan]] = field(default_factory=list)


@dataclass
class Plan:
    tensors: list[TensorPlan]
    shards: list[ShardPlan]
    notes: list[str]
    format_version: int = fmt.FORMAT_VERSION  # the manifest's: the config's, or 5 where a K storage is used

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self.shards)


def choose_storage(t: SourceTensor, opts: Options) -> tuple[str, bool, str | None]:
    """(storage, carried, note or None) for one tensor."""
    if len(t.shape) == 1:
        return fmt.F32, t.source_type in _LOSSLESS_TO_F32, None
    if opts.weights == fmt.F32:
        return fmt.F32, t.source_type in _LOSSLESS_TO_F32, None
    if not fmt.quantizable(t.shape[1]):
        note: str | None = (f"{t.name}: rows of {t.shape[1]} values do not split into groups of "
                            f"{fmt.GROUP_SIZE}; kept as f32")
        return fmt.F32, t.source_type in _LOSSLESS_TO_F32, note
    if t.carry_storage is not None and not (opts.requantize and t.source_type in _REQUANTIZABLE):
        wanted = fmt.Q8 if opts.weights == fmt.Q8 or any(re.search(p, t.name) for p in opts.keep_8bit) else fmt.Q4
        note = None
        if wanted == fmt.Q8 and t.carry_storage in _BITS:
            bits = _BITS[t.carry_storage]
            note = (f"{t.name}: the source stores it at {bits} bits ({t.source_type}); carried over at {bits} bits, "
                    "not widened")
        return t.carry_storage, True, note
    if opts.weights == fmt.Q8 or any(re.search(p, t.name) for p in opts.keep_8bit):
        return fmt.Q8, False, None
    return fmt.Q4, False, None


def _chunk_bytes(storage: str, rows: int, cols: int) -> int:
    return sum(fmt.align(p.nbytes) for p in fmt.plane_shapes(storage, rows, cols))


def _split_rows(tp: TensorPlan, cap: int) -> list[ChunkPlan]:
    rows, cols = tp.rows_cols
    if _chunk_bytes(tp.storage, rows, cols) <= cap:
        return [ChunkPlan((0, rows))]
    per = max(1, cap // fmt.row_bytes(tp.storage, cols))
    while per > 1 and _chunk_bytes(tp.storage, per, cols) > cap:
        per -= 1
    if _chunk_bytes(tp.storage, per, cols) > cap:
        raise InputError(f"one row of {tp.source.name} takes {fmt.row_bytes(tp.storage, cols)} bytes, more than the "
                         f"shard size {cap}; use a larger --shard-size")
    return [ChunkPlan((r, min(r + per, rows))) for r in range(0, rows, per)]


def _qkv_stacks(tensors: list[TensorPlan], cap: int) -> dict[str, list[TensorPlan]]:
    """A layer's attn_q name -> its [q, k, v] plans, where the three can lie plane by plane back to back (q's
    qweight, k's, v's, then q's scales, ...): one storage and row length, one chunk each, q's and k's planes whole
    multiples of the plane alignment (so no padding comes between) and all three within one shard. Engines then bind
    q, k and v as one weight of stacked rows (app/engine/gpu/weights.js stackRows) instead of copying them at load."""
    by_name = {tp.source.name: tp for tp in tensors}
    out: dict[str, list[TensorPlan]] = {}
    for tp in tensors:
        name = tp.source.name
        if not name.endswith(".attn_q.weight"):
            continue
        layer = name.removesuffix("attn_q.weight")
        k, v = by_name.get(layer + "attn_k.weight"), by_name.get(layer + "attn_v.weight")
        if k is None or v is None:
            continue
        group = [tp, k, v]
        if len({(t.storage, t.rows_cols[1]) for t in group}) != 1 or any(len(t.chunks) != 1 for t in group):
            continue
        if any(p.nbytes % fmt.PLANE_ALIGN for t in group[:2] for p in fmt.plane_shapes(t.storage, *t.rows_cols)):
            continue
        if sum(_chunk_bytes(t.storage, *t.rows_cols) for t in group) > cap:
            continue
        out[name] = group
    return out


def make_plan(ckpt: Checkpoint, opts: Options) -> Plan:
    if opts.weights not in fmt.STORAGE_TYPES:
        raise InputError(f"--weights {opts.weights!r} is not a storage type (use one of "
                         f"{', '.join(fmt.STORAGE_TYPES)})")
    if opts.shard_bytes < 4 * fmt.PLANE_ALIGN:
        raise InputError(f"--shard-size {opts.shard_bytes} is too small; use at least {4 * fmt.PLANE_ALIGN} bytes")
    cap = min(opts.shard_bytes, fmt.MAX_BINDING_BYTES)
    by_name = {t.name: t for t in ckpt.tensors}
    notes = list(ckpt.notes)
    tensors: list[TensorPlan] = []
    for name in ckpt.config.tensor_shapes():  # canonical order: embedding, head, then layer by layer
        storage, carried, note = choose_storage(by_name[name], opts)
        if note:
            notes.append(note)
        tp = TensorPlan(by_name[name], storage, carried)
        tp.chunks = _split_rows(tp, cap)
        if len(tp.chunks) > 1:
            notes.append(f"{name}: split by rows into {len(tp.chunks)} chunks (shard/binding size limit)")
        tensors.append(tp)

    shards: list[ShardPlan] = []
    stacked = _qkv_stacks(tensors, cap)
    placed: set[str] = set()
    for tp in tensors:
        if tp.source.name in placed:
            continue
        group = stacked.get(tp.source.name, [tp])
        placed |= {t.source.name for t in group}
        for i in range(len(tp.chunks)):
            # one chunk of each tensor of the group (groups are of whole tensors: i == 0), plane by plane back to back
            parts = [(t, t.chunks[i]) for t in group]
            shapes = [fmt.plane_shapes(t.storage, c.rows[1] - c.rows[0], t.rows_cols[1]) for t, c in parts]
            need = sum(_chunk_bytes(t.storage, c.rows[1] - c.rows[0], t.rows_cols[1]) for t, c in parts)
            if not shards or fmt.align(shards[-1].size) + need > cap:
                shards.append(ShardPlan(fmt.SHARD_PATTERN.format(len(shards)), 0))
            shard = shards[-1]
            offset = fmt.align(shard.size)
            for j in range(len(shapes[0])):
                for (_t, chunk), planes in zip(parts, shapes, strict=True):
                    chunk.planes[planes[j].name] = (offset, planes[j].nbytes)
                    shard.size = offset + planes[j].nbytes
                    offset = shard.size  # the group's next plane j follows at once (_qkv_stacks: no padding due)
                offset = fmt.align(shard.size)
            for t, chunk in parts:
                chunk.file = shard.file
                shard.chunks.append((t, chunk))
    version = ckpt.config.format_version
    k_storages = sorted({tp.storage for tp in tensors if tp.storage in fmt.K_STORAGE_TYPES})
    if k_storages:
        version = max(version, fmt.FORMAT_VERSION_K_QUANTS)
        notes.append(f"GGUF K-quants carried exactly ({', '.join(k_storages)}): the package is format version "
                     f"{fmt.FORMAT_VERSION_K_QUANTS}, which fieldllm readers older than it refuse (--requantize "
                     "re-quantizes them and Q5_0 instead: a smaller package of an older version, not exact)")
    return Plan(tensors, shards, notes, version)
