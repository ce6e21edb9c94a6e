"""The reference engine's weight matrices: kept as the package stores them, dequantized when used.

A model's matrices stay in their stored planes (q4 / q8 / f32 / q4k / q5k / q6k, docs/FORMAT.md; the shards are
read into memory once), so an engine holds about the package's bytes, not 4x them as f32. ``WeightCache.f32(m)`` gives
a matrix's f32 values for a product, dequantized by ``quant.dequantize`` (K storages: ``kquants.dequantize``, the
same bits as gguf's own dequantization; the same arithmetic as ``Package.tensor_f32``, so the
logits are bit-identical to an all-f32 engine) and kept in an LRU of at most ``budget`` bytes of f32: a model whose
matrices fit (SmolLM2-135M: 537 MB) dequantizes each once and then runs as fast as on f32 weights; a larger one
re-dequantizes what was evicted. ``rows(m, ids)`` (the embedding lookup) unpacks only the rows asked for unless the
whole matrix is cached anyway.

Three kinds of matrix: ``PackedMatrix`` (a package's planes), ``DenseMatrix`` (f32 values held: tests, f32 packages)
and ``LazyMatrix`` (a function that returns the f32 values: a source checkpoint, for ``prepare --check``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from .. import format as fmt
from .. import quant
from ..package import Package

F32 = npt.NDArray[np.float32]
IDS = npt.NDArray[np.intp]

DEFAULT_CACHE_BYTES = 1 << 30  # f32 bytes of dequantized matrices an engine keeps (load(..., weight_cache_bytes=))


class Matrix(Protocol):
    """A 2-D weight [rows, cols] (rows = output features)."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def held(self) -> F32 | None:
        """The f32 values when they are held as such (nothing to dequantize, nothing to cache), else None."""
        ...

    def f32(self) -> F32:
        """All values, f32 [rows, cols], freshly computed."""
        ...

    def rows(self, index: IDS) -> F32:
        """Rows ``index`` as f32 [len(index), cols], equal to ``f32()[index]``."""
        ...

    def stored_bytes(self) -> int:
        """Bytes this object holds in memory (its planes or values; 0 for one that loads on demand)."""
        ...


def _check_index(index: IDS, rows: int) -> None:
    if len(index) and (int(index.min()) < 0 or int(index.max()) >= rows):
        raise IndexError(f"row ids {int(index.min())}..{int(index.max())} are outside 0..{rows - 1}")


@dataclass(eq=False)  # hashed by identity: a cache key
class PackedMatrix:
    """A tensor's chunks as the package stores them: [(first row, last row + 1, planes)]."""

    storage: str
    shape: tuple[int, int]
    chunks: list[tuple[int, int, quant.Planes]]

    def held(self) -> F32 | None:
        if self.storage == fmt.F32 and len(self.chunks) == 1:
            rows, cols = self.shape
            return self.chunks[0][2]["data"].view(np.float32)[: rows * cols].reshape(rows, cols)
        return None

    def f32(self) -> F32:  # as Package.tensor_f32
        cols = self.shape[1]
        parts = [quant.dequantize(self.storage, planes, stop - start, cols) for start, stop, planes in self.chunks]
        return np.concatenate(parts, axis=0).reshape(self.shape)

    def rows(self, index: IDS) -> F32:
        _check_index(index, self.shape[0])
        cols = self.shape[1]
        if len(self.chunks) == 1:
            start, stop, planes = self.chunks[0]
            return quant.dequantize_rows(self.storage, planes, stop - start, cols, index)
        out = np.empty((len(index), cols), np.float32)
        for start, stop, planes in self.chunks:
            inside = (index >= start) & (index < stop)
            if inside.any():
                out[inside] = quant.dequantize_rows(self.storage, planes, stop - start, cols, index[inside] - start)
        return out

    def stored_bytes(self) -> int:
        return sum(p.nbytes for _, _, planes in self.chunks for p in planes.values())


@dataclass(eq=False)
class DenseMatrix:
    """f32 values held as they are."""

    values: F32

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.values.shape
        return rows, cols

    def held(self) -> F32 | None:
        return self.values

    def f32(self) -> F32:
        return self.values

    def rows(self, index: IDS) -> F32:
        return self.values[index]

    def stored_bytes(self) -> int:
        return int(self.values.nbytes)


@dataclass(eq=False)
class LazyMatrix:
    """Values computed by ``load()`` on each use (a source checkpoint's tensor, read from its file)."""

    shape: tuple[int, int]
    load: Callable[[], F32]

    def held(self) -> F32 | None:
        return None

    def f32(self) -> F32:
        return self.load()

    def rows(self, index: IDS) -> F32:
        return self.load()[index]

    def stored_bytes(self) -> int:
        return 0


class WeightCache:
    """Dequantized matrices, least recently used evicted first, at most ``budget`` bytes of f32 in all. A matrix
    larger than the whole budget is dequantized for each use and not kept."""

    def __init__(self, budget: int = DEFAULT_CACHE_BYTES):
        if budget < 0:
            raise ValueError(f"the weight cache budget must be >= 0 bytes, got {budget}")
        self.budget = budget
        self.bytes = 0  # f32 bytes held now
        self._held: OrderedDict[Matrix, F32] = OrderedDict()  # oldest use first

    def f32(self, m: Matrix) -> F32:
        """``m``'s values as f32 [rows, cols]."""
        values = m.held()
        if values is not None:
            return values
        values = self._held.get(m)
        if values is not None:
            self._held.move_to_end(m)
            return values
        values = m.f32()
        if values.nbytes <= self.budget:
            while self.bytes + values.nbytes > self.budget:
                _, old = self._held.popitem(last=False)
                self.bytes -= old.nbytes
            self._held[m] = values
            self.bytes += values.nbytes
        return values

    def rows(self, m: Matrix, index: IDS) -> F32:
        """Rows ``index`` of ``m`` as f32: from the cached matrix when it is there, else only those rows unpacked."""
        values = m.held()
        if values is None:
            values = self._held.get(m)
        return values[index] if values is not None else m.rows(index)


class PackageMatrices:
    """A package's tensors from its shards, each read into memory once: matrices as PackedMatrix views of the
    shards' planes, vectors (norms, biases) as f32 arrays."""

    def __init__(self, pkg: Package):
        self.pkg = pkg
        self.shards: dict[str, npt.NDArray[np.uint8]] = {}  # file name -> its bytes

    def _chunks(self, name: str) -> list[tuple[int, int, quant.Planes]]:
        out = []
        for chunk in self.pkg.manifest["tensors"][name]["chunks"]:
            data = self.shards.get(chunk["file"])
            if data is None:
                data = self.shards[chunk["file"]] = np.fromfile(self.pkg.path / chunk["file"], dtype=np.uint8)
            planes = {plane: data[offset: offset + nbytes].view(np.uint32)  # offsets: multiples of PLANE_ALIGN
                      for plane, (offset, nbytes) in chunk["planes"].items()}
            out.append((int(chunk["rows"][0]), int(chunk["rows"][1]), planes))
        return out

    def matrix(self, name: str) -> PackedMatrix:
        entry = self.pkg.manifest["tensors"][name]
        rows, cols = entry["shape"]
        return PackedMatrix(entry["storage"], (int(rows), int(cols)), self._chunks(name))

    def vector(self, name: str) -> F32:  # as Package.tensor_f32
        entry = self.pkg.manifest["tensors"][name]
        shape = tuple(entry["shape"])
        parts = [quant.dequantize(entry["storage"], planes, stop - start, shape[-1])
                 for start, stop, planes in self._chunks(name)]
        return np.concatenate(parts, axis=0).reshape(shape)

    def stored_bytes(self) -> int:
        """Bytes of the shards read (what the matrices are views of; the vectors are small copies beside them)."""
        return sum(int(d.nbytes) for d in self.shards.values())
