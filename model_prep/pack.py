"""Write a model package: shards, tokenizer, report, manifest. Staged, resumable, moved into place at the end.

The package is built in a hidden sibling folder ``.NAME.partial`` with a journal of finished shards. An interrupted
run (Ctrl-C, killed) leaves that folder, and the next run with the same source and options reuses every shard whose
bytes still match; any other failure deletes it. Only a complete package is renamed to ``NAME``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from . import format as fmt
from . import quant
from .checkpoint import Checkpoint, file_sha256
from .errors import DiskSpaceError, InputError
from .fsutil import replace_dir, write_atomic
from .package import open_package, read_manifest
from .plan import Options, Plan, ShardPlan, TensorPlan
from .shard_writer import BackgroundWriter

PREP_VERSION = 4  # bump when the bytes written for the same input change: it invalidates caches
# (2: manifest source.sha256 is the GGUF file's own sha256, source.files and files_sha256 added; 3: GGUF Q4_K/Q5_K/
# Q6_K/Q5_0 carried exactly instead of re-quantized)
_JOURNAL = ".journal.json"
_SPACE_MARGIN = 16 * 1024 * 1024  # tokenizer, manifest, report and filesystem slack, bytes


@dataclass
class TensorStats:
    storage: str
    source_type: str
    shape: list[int]
    carried: bool
    max_abs_error: float
    mean_abs_error: float


def cache_key(source_files_sha256: str, opts: Options, check: bool) -> str:
    """What keys prepare's cache (manifest source.cache_key): the source files' names and bytes (SourceHashes.
    files_sha256), the options, --check, and the versions of the format and of this code."""
    blob = json.dumps({"source": source_files_sha256, "options": opts.to_dict(), "check": check,
                       "format_version": fmt.FORMAT_VERSION, "prep_version": PREP_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def staging_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def is_up_to_date(out: Path, key: str) -> bool:
    """True when ``out`` holds a complete package built from the same key, every file matching its hash."""
    try:
        manifest = read_manifest(out)
        if manifest.get("source", {}).get("cache_key") != key:
            return False
        open_package(out).verify(hashes=True)
    except Exception:
        return False
    return True


def _tensor_planes(tp: TensorPlan) -> tuple[quant.Planes, TensorStats]:
    """Encode a whole tensor (all its rows) and measure the error against the source's own values."""
    t = tp.source
    rows, cols = tp.rows_cols
    carried = t.carry() if tp.carried and tp.storage != fmt.F32 else None
    if carried is not None:
        storage, planes = carried
        assert storage == tp.storage
        err_max = err_mean = 0.0  # same values by construction (tests/test_gguf_source.py checks bit-exactness)
    else:
        values = t.load_f32().reshape(rows, cols)
        planes = quant.quantize(tp.storage, values, t.name)
        if tp.carried:
            err_max = err_mean = 0.0
        else:
            err = np.abs(quant.dequantize(tp.storage, planes, rows, cols) - values)
            err_max, err_mean = float(err.max()), float(err.mean())
    return planes, TensorStats(tp.storage, t.source_type, list(t.shape), tp.carried, err_max, err_mean)


class _Encoder:
    """Encodes each tensor once, even when its row chunks land in several shards."""

    def __init__(self, stats: dict[str, dict[str, Any]]):
        self.stats = stats
        self._name = ""
        self._planes: quant.Planes = {}

    def into(self, tp: TensorPlan, out: quant.Planes) -> bool:
        """Encode a tensor stored whole in one chunk straight into ``out`` (views of the shard) where its source can
        (GGUF Q4_0/Q4_1/Q8_0 carried over: no planes to copy); False where it cannot."""
        t = tp.source
        if len(tp.chunks) != 1 or not tp.carried or tp.storage == fmt.F32 or t.carry_into is None:
            return False
        assert t.carry_storage == tp.storage
        t.carry_into(out)
        self.stats[t.name] = TensorStats(tp.storage, t.source_type, list(t.shape), True, 0.0, 0.0).__dict__
        return True

    def chunk(self, tp: TensorPlan, rows: tuple[int, int]) -> quant.Planes:
        if tp.source.name != self._name:
            self._planes, stats = _tensor_planes(tp)
            self._name = tp.source.name
            self.stats[tp.source.name] = stats.__dict__
        if len(tp.chunks) == 1:
            return self._planes
        return quant.slice_rows(tp.storage, self._planes, tp.rows_cols[1], *rows)


def _shard_bytes(shard: ShardPlan, encoder: _Encoder) -> memoryview:
    """The shard's bytes: every plane copied once into a zeroed buffer (alignment gaps stay zero)."""
    buf = np.zeros(shard.size, np.uint8)
    for tp, chunk in shard.chunks:
        if encoder.into(tp, {name: buf[offset: offset + nbytes].view(np.uint32)
                             for name, (offset, nbytes) in chunk.planes.items()}):
            continue
        planes = encoder.chunk(tp, chunk.rows)
        for name, (offset, nbytes) in chunk.planes.items():
            data = np.ascontiguousarray(planes[name]).reshape(-1).view(np.uint8)
            if data.nbytes != nbytes:
                raise AssertionError(f"{tp.source.name}/{name}: encoded {data.nbytes} bytes, planned {nbytes}")
            buf[offset: offset + nbytes] = data
    return memoryview(buf.data)


def _load_journal(stage: Path, key: Callable[[], str]) -> dict[str, Any]:
    """The journal of an interrupted run with the same key, else an empty one (its key is set when first saved)."""
    try:
        journal = json.loads((stage / _JOURNAL).read_text())
        if journal.get("cache_key") == key():
            return dict(journal)
    except (OSError, json.JSONDecodeError):
        pass
    return _empty_journal()


def _empty_journal() -> dict[str, Any]:
    return {"cache_key": None, "shards": {}, "stats": {}}


def _save_journal(stage: Path, journal: dict[str, Any], key: Callable[[], str]) -> None:
    # Atomic (rename) but not fsynced: after a crash a lost or empty journal only means redoing shards, and a resumed
    # run re-hashes every shard the journal names before reusing it.
    journal["cache_key"] = key()
    tmp = stage / (_JOURNAL + ".tmp")
    tmp.write_text(json.dumps(journal))
    tmp.replace(stage / _JOURNAL)


def _check_space(where: Path, need: int) -> None:
    probe = where
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need + _SPACE_MARGIN:
        raise DiskSpaceError(f"not enough disk space in {probe}: the package needs {(need + _SPACE_MARGIN) / 2**20:.0f}"
                             f" MiB, {free / 2**20:.0f} MiB are free; free some space or choose another --out")


def _manifest(ckpt: Checkpoint, plan: Plan, files: list[dict[str, Any]], source: dict[str, Any]) -> dict[str, Any]:
    generation = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 512} | ckpt.generation
    tensors = {}
    for tp in plan.tensors:
        tensors[tp.source.name] = {
            "storage": tp.storage,
            "shape": list(tp.source.shape),
            "source_type": tp.source.source_type,
            "chunks": [{"file": c.file, "rows": list(c.rows), "planes": {k: list(v) for k, v in c.planes.items()}}
                       for c in tp.chunks],
        }
    package_id = hashlib.sha256(
        json.dumps(sorted((f["path"], f["size"], f["sha256"]) for f in files)).encode()).hexdigest()
    return {
        "format": fmt.FORMAT_NAME,
        "format_version": plan.format_version,  # 1 unless the config or a storage needs a later version's additions
        "name": ckpt.name,
        "package_id": package_id,
        "config": ckpt.config.to_dict(),
        "generation": generation,
        "chat_template": ckpt.chat_template,
        "tokenizer": fmt.TOKENIZER_FILE,
        "tensors": tensors,
        "files": files,
        "source": source,
    }


def _write_entry(stage: Path, name: str, data: bytes) -> dict[str, Any]:
    """Write one small file of the package; its manifest entry, hashed from the bytes written."""
    write_atomic(stage / name, data)
    return {"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _submit_tokenizer(ckpt: Checkpoint, writer: BackgroundWriter) -> None:
    if fmt.TOKENIZER_FILE not in writer.names:
        writer.submit(fmt.TOKENIZER_FILE, ckpt.tokenizer_text().encode())


def _check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / fmt.MANIFEST_FILE).exists():
        raise InputError(f"{out} exists and is not a model package; choose another --out or remove it")


def write_package(
    ckpt: Checkpoint,
    plan: Plan,
    out: Path,
    key: str | Callable[[], str],
    source: dict[str, Any] | Callable[[], dict[str, Any]],
    check: Callable[[Path], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the package for ``plan`` into ``out``; returns the report. ``check(stage)`` adds perplexities.

    ``key`` (the cache key) and ``source`` (the manifest's "source") may be functions, called only when needed:
    prepare hashes the source file on another thread meanwhile.
    """
    key_of = key if callable(key) else lambda: key
    _check_out(out)
    stage = staging_dir(out)
    journal = _load_journal(stage, key_of) if (stage / _JOURNAL).exists() else _empty_journal()
    if stage.exists() and not journal["shards"]:
        shutil.rmtree(stage)  # a stale stage from other inputs or options
    done = {name for name, entry in journal["shards"].items()
            if (stage / name).is_file() and (stage / name).stat().st_size == entry["size"]
            and file_sha256(stage / name) == entry["sha256"]}
    _check_space(out.parent, sum(s.size for s in plan.shards if s.file not in done))
    stage.mkdir(parents=True, exist_ok=True)
    try:
        encoder = _Encoder(journal["stats"])
        writer = BackgroundWriter(stage, write_atomic)  # write_atomic as this module sees it (tests swap it)

        def journal_shard(name: str, entry: dict[str, Any]) -> None:
            journal["shards"][name] = entry
            _save_journal(stage, journal, key_of)

        try:
            with tqdm(total=plan.total_bytes, unit="B", unit_scale=True, desc="packing", disable=None,
                      leave=False) as bar:
                for shard in plan.shards:
                    if shard.file not in done:
                        writer.submit(shard.file, _shard_bytes(shard, encoder), journal_shard)
                        # the tokenizer (GGUF: rebuilt in Python) is built while the first shard is hashed and
                        # written; a tokenizer error still stops a large model after one shard
                        _submit_tokenizer(ckpt, writer)
                    bar.update(shard.size)
            _submit_tokenizer(ckpt, writer)  # when every shard came from an earlier run
            # loading it back holds the GIL but the writer threads do not need it: done while the last shard is
            # hashed and written
            ckpt.check_tokenizer()
        finally:
            entries = writer.close()
        # a tensor whose shards all came from an earlier run still needs its stats
        for tp in plan.tensors:
            if tp.source.name not in journal["stats"]:
                journal["stats"][tp.source.name] = _tensor_planes(tp)[1].__dict__
        files = [{"path": s.file, **journal["shards"][s.file]} for s in plan.shards]  # hashed as written
        files.append({"path": fmt.TOKENIZER_FILE, **entries[fmt.TOKENIZER_FILE]})
        report: dict[str, Any] = {
            "name": ckpt.name,
            "total_bytes": plan.total_bytes,
            "shards": len(plan.shards),
            "notes": plan.notes,
            "tensors": {tp.source.name: journal["stats"][tp.source.name] for tp in plan.tensors},
        }
        source_info = source() if callable(source) else source
        if check is not None:
            write_atomic(stage / fmt.MANIFEST_FILE, json.dumps(_manifest(ckpt, plan, files, source_info)).encode())
            report["check"] = check(stage)
        files.append(_write_entry(stage, fmt.REPORT_FILE, json.dumps(report, indent=1).encode()))
        manifest = _manifest(ckpt, plan, files, source_info)
        write_atomic(stage / fmt.MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
        (stage / _JOURNAL).unlink(missing_ok=True)
        _check_out(out)  # again: something may have appeared there while we worked
        replace_dir(stage, out)
        return report
    except KeyboardInterrupt:
        raise  # keep the stage and its journal: the next run resumes
    except OSError as e:
        shutil.rmtree(stage, ignore_errors=True)
        if e.errno == errno.ENOSPC:
            raise DiskSpaceError(f"the disk filled up while writing {out}; nothing was kept: free some space or "
                                 "choose another --out") from e
        raise
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
