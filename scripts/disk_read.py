"""The same-run bound the install benchmarks compare with: reading bytes from disk, through the page cache or not."""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

BLOCK = 8 << 20


def read_cached(paths: list[Path]) -> float:
    """Seconds to read the files through the page cache, after a first read warmed it (the fastest a read can be)."""
    for p in paths:
        p.read_bytes()
    t = time.perf_counter()
    for p in paths:
        with open(p, "rb") as f:
            while f.read(BLOCK):
                pass
    return time.perf_counter() - t


def read_uncached(paths: list[Path]) -> float | None:
    """Seconds to read the files with O_DIRECT, bypassing the page cache (what a first read from disk costs);
    None where O_DIRECT is not supported."""
    buf = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT requires
    t = time.perf_counter()
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
        except (OSError, AttributeError):
            return None
        try:
            while os.readv(fd, [buf]) == BLOCK:
                pass
        except OSError:
            return None
        finally:
            os.close(fd)
    return time.perf_counter() - t
