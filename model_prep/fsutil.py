"""Writing outputs so that a reader never sees them half-written: used by `prepare` and `build`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write to a sibling temp file, fsync, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def replace_dir(stage: Path, out: Path) -> None:
    """Move a finished stage folder to ``out``. The old ``out`` is renamed away first, so ``out`` is at every moment
    either the complete old folder, the complete new one, or (for the instant between two renames) absent: never
    half-written. The old one is deleted last."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(stage, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(stage, out)
