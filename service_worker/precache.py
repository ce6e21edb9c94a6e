"""The precache manifest: every app-shell file with its size and sha256, written into sw.js at build time.

The service worker keys each file by its hash (Workbox's revisioned keys), so a changed file gets a new key and an
unchanged one is not fetched again; and because the list is inside sw.js, any change to the shell changes the worker's
bytes, which is what makes the browser install the new version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("sw.js")
MANIFEST_MARKER = "const PRECACHE_MANIFEST = []; // @precache-manifest"
BUILD_MARKER = "const BUILD_ID = 'dev'; // @build-id"


@dataclass(frozen=True)
class PrecacheEntry:
    url: str  # relative to the service worker's scope (the site root)
    size: int
    sha256: str


def entries_for(files: dict[str, bytes]) -> list[PrecacheEntry]:
    """Shell files (dist path -> bytes) as precache entries, sorted by URL."""
    return [PrecacheEntry(url, len(data), hashlib.sha256(data).hexdigest()) for url, data in sorted(files.items())]


def build_id(entries: list[PrecacheEntry]) -> str:
    """A short name for one shell version: the hash of its manifest."""
    return hashlib.sha256(json.dumps([asdict(e) for e in entries]).encode()).hexdigest()[:16]


def render_service_worker(entries: list[PrecacheEntry], ident: str, source: str | None = None) -> str:
    text = SOURCE.read_text(encoding="utf-8") if source is None else source
    for marker in (MANIFEST_MARKER, BUILD_MARKER):
        if text.count(marker) != 1:
            raise ValueError(f"{SOURCE} must contain the line {marker!r} exactly once")
    listing = "".join(f"  {json.dumps(asdict(e), separators=(', ', ': '))},\n" for e in entries)
    text = text.replace(MANIFEST_MARKER, f"const PRECACHE_MANIFEST = [\n{listing}]; // written by fieldllm build")
    return text.replace(BUILD_MARKER, f"const BUILD_ID = {json.dumps(ident)}; // written by fieldllm build")


def manifest_json(entries: list[PrecacheEntry], ident: str) -> bytes:
    """The same list as a file beside sw.js, for people and tests."""
    return (json.dumps({"build_id": ident, "files": [asdict(e) for e in entries]}, indent=1) + "\n").encode()
