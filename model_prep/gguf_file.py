"""Parse a GGUF container (header, metadata, tensor index) over a memory map; no model semantics here.

Layout (GGUF v2/v3, llama.cpp's ggml/docs/gguf.md), all integers in the file's byte order:
  "GGUF" | u32 version | u64 tensor count | u64 metadata count
  metadata: (string key, u32 value type, value) each; a string is u64 byte length + UTF-8 bytes; an array is
            u32 item type + u64 count + items
  tensor infos: (string name, u32 n_dims, u64 dims[n_dims] (ne0 first), u32 ggml type, u64 offset from data start)
  padding to ``general.alignment`` (default 32), then the tensor data.

Why not `gguf.GGUFReader`: it builds a numpy view per value and recurses once per array item, which on SmolLM2's
tokenizer (49k tokens, 49k merges, 49k token types) costs 1.8 s; this parser walks strings with ``struct`` and reads
numeric arrays as one numpy view each (docs/PERFORMANCE.md). It gives the same values as ``ReaderField.contents()``
and the same tensor arrays as ``ReaderTensor.data`` (tests/test_gguf_source.py compares both on SmolLM2).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import quant_shape_to_byte_shape

SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types (gguf.GGUFValueType): struct code of each scalar; 8 = string, 9 = array.
_SCALAR_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
# numpy item type of the tensor types gguf's reader views as typed arrays; every other type is raw bytes.
_TYPED_TENSORS = {GGMLQuantizationType.F32: "f4", GGMLQuantizationType.F16: "f2", GGMLQuantizationType.F64: "f8",
                  GGMLQuantizationType.I8: "i1", GGMLQuantizationType.I16: "i2", GGMLQuantizationType.I32: "i4",
                  GGMLQuantizationType.I64: "i8"}


class GGUFFormatError(ValueError):
    """The bytes do not follow the GGUF layout (truncated, corrupt, or a version we do not read)."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    ggml_type: int  # GGMLQuantizationType value, not yet checked against the types we support
    dims: tuple[int, ...]  # GGUF order: ne0 (the contiguous one) first
    data_offset: int  # bytes from the start of the file
    n_bytes: int
    data: npt.NDArray[Any]  # read-only view of the mapped file; numpy shape = dims reversed (bytes for block types)


@dataclass
class GGUFFile:
    path: Path
    version: int
    byte_order: str  # struct/numpy prefix: "<" or ">"
    metadata: dict[str, Any]  # key -> str | int | float | bool | list (as gguf's ReaderField.contents())
    tensors: list[TensorInfo]
    alignment: int
    data_start: int  # byte offset of the tensor data section


class _Cursor:
    """Sequential reads from the mapped header; every read past the end raises struct.error."""

    def __init__(self, buf: mmap.mmap, order: str):
        self.buf, self.order, self.pos = buf, order, 0
        self._u32 = struct.Struct(order + "I").unpack_from
        self._u64 = struct.Struct(order + "Q").unpack_from
        self._scalars = {t: struct.Struct(order + c) for t, c in _SCALAR_CODES.items()}

    def u32(self) -> int:
        (v,) = self._u32(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def u64(self) -> int:
        (v,) = self._u64(self.buf, self.pos)
        self.pos += 8
        return int(v)

    def string(self) -> str:
        n = self.u64()
        end = self.pos + n
        if end > len(self.buf):
            raise GGUFFormatError(f"a string at byte {self.pos - 8} runs past the end of the file")
        s = str(self.buf[self.pos: end], "utf-8")
        self.pos = end
        return s

    def strings(self, count: int) -> list[str]:
        # The hot loop of a tokenizer's metadata (~100k strings): local names, no per-item bounds check (a slice
        # past the end is short, and the check after the loop catches it; a length read past the end raises).
        buf, pos, u64 = self.buf, self.pos, self._u64
        out: list[str] = []
        append = out.append
        for _ in range(count):
            (n,) = u64(buf, pos)
            pos += 8
            append(str(buf[pos: pos + n], "utf-8"))
            pos += n
        if pos > len(buf):
            raise GGUFFormatError(f"a string array at byte {self.pos} runs past the end of the file")
        self.pos = pos
        return out

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype, count = self.u32(), self.u64()
            return self.array(itype, count)
        s = self._scalars.get(vtype)
        if s is None:
            raise GGUFFormatError(f"unknown metadata value type {vtype} at byte {self.pos - 4}")
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def array(self, itype: int, count: int) -> list[Any]:
        if itype == _STRING:
            return self.strings(count)
        code = _SCALAR_CODES.get(itype)
        if code is not None:  # one numpy view for the whole array, then plain Python values
            dtype = np.dtype(self.order + code)
            if self.pos + count * dtype.itemsize > len(self.buf):
                raise GGUFFormatError(f"an array at byte {self.pos} runs past the end of the file")
            values = np.frombuffer(self.buf, dtype, count, self.pos).tolist()
            self.pos += count * dtype.itemsize
            return list(values)
        if itype == _ARRAY:  # nested arrays come out flattened, as gguf's reader gives them
            out: list[Any] = []
            for _ in range(count):
                sub_type, sub_count = self.u32(), self.u64()
                out += self.array(sub_type, sub_count)
            return out
        raise GGUFFormatError(f"unknown array item type {itype} at byte {self.pos}")


def _byte_order(buf: mmap.mmap) -> str:
    # A file written on a machine of the other byte order reads its version as 0x0N000000: low half zero.
    (little,) = struct.unpack_from("<I", buf, 4)
    return ">" if little & 0xFFFF == 0 else "<"


def _tensor(name: str, dims: tuple[int, ...], raw_type: int, offset: int, buf: mmap.mmap, order: str
            ) -> TensorInfo:
    try:
        qtype = GGMLQuantizationType(raw_type)
    except ValueError:
        raise GGUFFormatError(f"tensor {name} has unknown type id {raw_type}") from None
    block, type_size = GGML_QUANT_SIZES[qtype]
    n_elems = int(np.prod(dims, dtype=np.int64)) if dims else 1
    if dims and dims[0] % block:
        raise GGUFFormatError(f"tensor {name}: rows of {dims[0]} values do not fill whole {qtype.name} blocks")
    n_bytes = n_elems // block * type_size
    if offset + n_bytes > len(buf):
        raise GGUFFormatError(f"tensor {name} ends past the end of the file (truncated)")
    np_shape = tuple(reversed(dims))
    item = _TYPED_TENSORS.get(qtype)
    if item is None:
        data = np.frombuffer(buf, np.uint8, n_bytes, offset).reshape(quant_shape_to_byte_shape(np_shape, qtype))
    else:
        data = np.frombuffer(buf, np.dtype(order + item), n_elems, offset).reshape(np_shape)
    return TensorInfo(name, int(qtype), dims, offset, n_bytes, data)


def read_gguf_file(path: Path) -> GGUFFile:
    """Parse the file; raises GGUFFormatError (or struct.error, UnicodeDecodeError) on damaged bytes."""
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # the mapping outlives the file object
    if buf[:4] != b"GGUF":
        raise GGUFFormatError("the file does not start with 'GGUF'")
    order = _byte_order(buf)
    cur = _Cursor(buf, order)
    cur.pos = 4
    version = cur.u32()
    if version not in SUPPORTED_VERSIONS:
        raise GGUFFormatError(f"GGUF version {version} (this reader reads {', '.join(map(str, SUPPORTED_VERSIONS))})")
    n_tensors, n_kv = cur.u64(), cur.u64()
    # gguf's reader lists the header counts as fields too; kept so both give the same keys
    meta: dict[str, Any] = {"GGUF.version": version, "GGUF.tensor_count": n_tensors, "GGUF.kv_count": n_kv}
    alignment = DEFAULT_ALIGNMENT
    for _ in range(n_kv):  # each entry takes >= 12 bytes, so a corrupt count runs off the end and raises
        key = cur.string()
        vtype = cur.u32()
        if key in meta:
            raise GGUFFormatError(f"metadata key {key!r} appears twice")
        meta[key] = cur.value(vtype)
        if key == "general.alignment":
            alignment = meta[key]
            if vtype != _UINT32 or alignment <= 0 or alignment & (alignment - 1):
                raise GGUFFormatError(f"general.alignment must be a u32 power of two, not {alignment!r}")
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.u32()
        dims = tuple(cur.u64() for _ in range(n_dims))
        infos.append((name, dims, cur.u32(), cur.u64()))
    data_start = -(-cur.pos // alignment) * alignment
    seen: set[str] = set()
    tensors = []
    for name, dims, raw_type, offset in infos:
        if name in seen:
            raise GGUFFormatError(f"tensor {name} appears twice")
        seen.add(name)
        tensors.append(_tensor(name, dims, raw_type, data_start + offset, buf, order))
    return GGUFFile(path, version, order, meta, tensors, alignment, data_start)
