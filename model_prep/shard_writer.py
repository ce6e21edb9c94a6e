"""Write and hash a package's files on background threads while the caller encodes the next one.

File writes, fsync and sha256 all release the GIL, so on a 2-core machine the packer's numpy encoding, the write and
the hash of the previous shard run side by side (SmolLM2: 92 MiB in 3 shards).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Buffer = bytes | bytearray | memoryview
Entry = dict[str, Any]  # {"size": bytes, "sha256": hex}: a manifest file entry without its path


def _sha256(data: Buffer) -> str:
    return hashlib.sha256(data).hexdigest()  # releases the GIL for buffers over 2 KiB


@dataclass
class _Pending:
    name: str
    size: int
    digest: Future[str]
    written: Future[None]
    on_written: Callable[[str, Entry], None] | None


class BackgroundWriter:
    """``submit(name, data)`` returns at once; the file ``folder/name`` is written with ``write(path, data)`` (the
    packer passes its atomic, fsynced write) and hashed from ``data``, on a pool of three threads.

    At most ``ahead`` files wait in memory: a further ``submit`` first finishes the oldest. A file's
    ``on_written(name, entry)`` runs on the caller's thread once it is written and hashed (the packer journals shards
    there). ``close()`` waits for every write, finishes each one that succeeded, then re-raises the first failure; run
    it on errors and Ctrl-C too, so that no write is still going when the caller cleans up.
    """

    def __init__(self, folder: Path, write: Callable[[Path, Buffer], None], ahead: int = 3):
        self.folder, self.write, self.ahead = folder, write, ahead
        self.names: set[str] = set()  # every file submitted
        self.entries: dict[str, Entry] = {}  # every file finished
        # three threads, so that a shard's write can start while the previous one's is still going
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="package-io")
        self._pending: list[_Pending] = []

    def submit(self, name: str, data: Buffer, on_written: Callable[[str, Entry], None] | None = None) -> None:
        size = memoryview(data).nbytes
        self.names.add(name)
        written = self._pool.submit(self.write, self.folder / name, data)  # first: it takes longest
        self._pending.append(_Pending(name, size, self._pool.submit(_sha256, data), written, on_written))
        while len(self._pending) > self.ahead:
            self._finish(self._pending.pop(0))

    def _finish(self, item: _Pending) -> None:
        item.written.result()
        self.entries[item.name] = entry = {"size": item.size, "sha256": item.digest.result()}
        if item.on_written is not None:
            item.on_written(item.name, entry)

    def close(self) -> dict[str, Entry]:
        """Every file's entry, once all are written and hashed."""
        error: BaseException | None = None
        for item in self._pending:
            both: list[Future[Any]] = [item.digest, item.written]
            wait(both)
            if error is None:
                try:
                    self._finish(item)
                except BaseException as e:  # re-raised below, after every write has ended
                    error = e
        self._pending = []
        self._pool.shutdown(wait=True)
        if error is not None:
            raise error
        return self.entries
