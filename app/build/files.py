"""File helpers for the build: hashing, linking model shards, and replacing dist/ in one step."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def walk_files(root: Path, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files under root whose name ends with one of suffixes, sorted; skips dot-folders and __pycache__."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if any(p.startswith(".") or p == "__pycache__" for p in rel):
            continue
        if path.is_file() and path.name.endswith(suffixes):
            yield path


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link when src and dst share a filesystem (shards are large and never edited in place), else copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_stages(out: Path) -> None:
    """Stage and old folders left by an interrupted build: those whose process is gone (a build running beside
    this one keeps its own)."""
    for pattern in (f".{out.name}.stage-*", f".{out.name}.old-*"):
        for p in out.parent.glob(pattern):
            pid = p.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not _alive(int(pid)) or int(pid) == os.getpid():
                shutil.rmtree(p, ignore_errors=True)
