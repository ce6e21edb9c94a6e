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
from concurrent.futures import Future, ThreadPoolExecutor, wait
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

PREP_VERSION = 1  # bump when the bytes written for the same input change: it invalidates caches
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


def cache_key(source_sha256: str, opts: Options, check: bool) -> str:
    blob = json.dumps({"source": source_sha256, "options": opts.to_dict(), "check": check,
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
        planes = encoder.chunk(tp, chunk.rows)
        for name, (offset, nbytes) in chunk.planes.items():
            data = np.ascontiguousarray(planes[name]).reshape(-1).view(np.uint8)
            if data.nbytes != nbytes:
                raise AssertionError(f"{tp.source.name}/{name}: encoded {data.nbytes} bytes, planned {nbytes}")
            buf[offset: offset + nbytes] = data
    return memoryview(buf.data)


def _sha256(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()  # hashlib releases the GIL on large buffers


class _ShardWriter:
    """Writes and hashes finished shards on two threads while the caller encodes the next one (file writes, fsync
    and sha256 all release the GIL), and journals each shard once both are done.

    At most ``ahead`` shards wait in memory. ``close()`` waits for everything submitted, journals what succeeded and
    re-raises the first failure; it runs on errors and Ctrl-C too, so the journal always names every shard on disk.
    """

    def __init__(self, stage: Path, journal: dict[str, Any], ahead: int = 2):
        self.stage, self.journal, self.ahead = stage, journal, ahead
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shard-io")
        self.pending: list[tuple[str, int, Future[str], Future[None]]] = []

    def submit(self, name: str, data: memoryview) -> None:
        # write_atomic is looked up at call time, so tests can swap it
        self.pending.append((name, data.nbytes, self.pool.submit(_sha256, data),
                             self.pool.submit(write_atomic, self.stage / name, data)))
        while len(self.pending) > self.ahead:
            self._finish(self.pending.pop(0))

    def _finish(self, item: tuple[str, int, Future[str], Future[None]]) -> None:
        name, size, digest, written = item
        written.result()
        self.journal["shards"][name] = {"size": size, "sha256": digest.result()}
        write_atomic(self.stage / _JOURNAL, json.dumps(self.journal).encode())

    def close(self) -> None:
        error: BaseException | None = None
        for item in self.pending:
            both: list[Future[Any]] = [item[2], item[3]]
            wait(both)
            if error is None:
                try:
                    self._finish(item)
                except BaseException as e:  # re-raised below, after every write has ended
                    error = e
        self.pending = []
        self.pool.shutdown(wait=True)
        if error is not None:
            raise error


def _load_journal(stage: Path, key: str) -> dict[str, Any]:
    try:
        journal = json.loads((stage / _JOURNAL).read_text())
        if journal.get("cache_key") == key:
            return dict(journal)
    except (OSError, json.JSONDecodeError):
        pass
    return {"cache_key": key, "shards": {}, "stats": {}}


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
        "format_version": fmt.FORMAT_VERSION,
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


def _check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / fmt.MANIFEST_FILE).exists():
        raise InputError(f"{out} exists and is not a model package; choose another --out or remove it")


def write_package(
    ckpt: Checkpoint,
    plan: Plan,
    out: Path,
    key: str,
    source: dict[str, Any],
    check: Callable[[Path], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the package for ``plan`` into ``out``; returns the report. ``check(stage)`` adds perplexities."""
    _check_out(out)
    stage = staging_dir(out)
    journal = _load_journal(stage, key)
    if stage.exists() and not journal["shards"]:
        shutil.rmtree(stage)  # a stale stage from other inputs or options
    done = {name for name, entry in journal["shards"].items()
            if (stage / name).is_file() and (stage / name).stat().st_size == entry["size"]
            and file_sha256(stage / name) == entry["sha256"]}
    _check_space(out.parent, sum(s.size for s in plan.shards if s.file not in done))
    stage.mkdir(parents=True, exist_ok=True)
    try:
        encoder = _Encoder(journal["stats"])
        writer = _ShardWriter(stage, journal)
        try:
            with tqdm(total=plan.total_bytes, unit="B", unit_scale=True, desc="packing", disable=None,
                      leave=False) as bar:
                for shard in plan.shards:
                    if shard.file not in done:
                        writer.submit(shard.file, _shard_bytes(shard, encoder))
                        # the tokenizer (GGUF: rebuilt, mostly holding the GIL) is built while the first shard is
                        # hashed and written; a tokenizer error still stops a large model after one shard
                        ckpt.tokenizer_text()
                    bar.update(shard.size)
            tokenizer = ckpt.tokenizer_text().encode()
        finally:
            writer.close()
        # a tensor whose shards all came from an earlier run still needs its stats
        for tp in plan.tensors:
            if tp.source.name not in journal["stats"]:
                journal["stats"][tp.source.name] = _tensor_planes(tp)[1].__dict__
        files = [{"path": s.file, **journal["shards"][s.file]} for s in plan.shards]  # hashed as written
        files.append(_write_entry(stage, fmt.TOKENIZER_FILE, tokenizer))
        report: dict[str, Any] = {
            "name": ckpt.name,
            "total_bytes": plan.total_bytes,
            "shards": len(plan.shards),
            "notes": plan.notes,
            "tensors": {tp.source.name: journal["stats"][tp.source.name] for tp in plan.tensors},
        }
        if check is not None:
            write_atomic(stage / fmt.MANIFEST_FILE, json.dumps(_manifest(ckpt, plan, files, source)).encode())
            report["check"] = check(stage)
        files.append(_write_entry(stage, fmt.REPORT_FILE, json.dumps(report, indent=1).encode()))
        manifest = _manifest(ckpt, plan, files, source)
        write_atomic(stage / fmt.MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
        (stage / _JOURNAL).unlink()
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
