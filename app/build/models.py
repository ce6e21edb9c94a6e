"""Model packages in dist/: each under models/<name>-<id>/, and models/index.json saying which one is current.

The page reads the index to offer the current version, checks manifest.json against the size and sha256 the index
gives, then every other file against manifest.json: the index is the one thing it trusts from the server.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model_prep import format as fmt
from model_prep.checkpoint import file_sha256
from model_prep.package import read_manifest

from .errors import PackageError
from .files import link_or_copy, sha256_bytes, write_bytes

INDEX_FORMAT = "fieldllm-models"
INDEX_FORMAT_VERSION = 1
INDEX_FILE = "models/index.json"
_SAFE_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # plain names: the page builds URLs from them


@dataclass(frozen=True)
class ModelEntry:
    """One model version as models/index.json lists it."""

    dir: str  # folder under models/ (also the URL path segment)
    name: str
    package_id: str  # sha256 over the package's file list: the version's identity
    size: int  # bytes of every file, manifest.json included
    files: int  # files, manifest.json included
    manifest_size: int
    manifest_sha256: str
    format_version: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"url": f"models/{self.dir}/"}


def package_id_of(files: list[dict[str, Any]]) -> str:
    """The same hash model_prep/pack.py writes into manifest.json."""
    return hashlib.sha256(json.dumps(sorted((f["path"], f["size"], f["sha256"]) for f in files)).encode()).hexdigest()


def dir_name(manifest: dict[str, Any]) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(manifest.get("name", "model")).lower()).strip("-") or "model"
    return f"{slug[:48]}-{manifest['package_id'][:12]}"


def check_package(path: Path, verify_hashes: bool = True) -> dict[str, Any]:
    """The manifest of a package folder, after checking that its files are what the manifest says."""
    manifest = read_manifest(path)
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise PackageError(f"{path / fmt.MANIFEST_FILE} lists no files; prepare the package again")
    if manifest.get("package_id") != package_id_of(files):
        raise PackageError(f"{path / fmt.MANIFEST_FILE}: package_id does not match its file list (edited by hand?); "
                           "prepare the package again")
    sizes: dict[str, int] = {}
    for entry in files:
        name = entry["path"]
        if not _SAFE_FILE.fullmatch(name) or name == fmt.MANIFEST_FILE:
            raise PackageError(f"{path}: file name {name!r} cannot be served as a package file; prepare it again")
        p = path / name
        if not p.is_file() or p.stat().st_size != entry["size"]:
            raise PackageError(f"{p} is missing or not {entry['size']} bytes as the manifest says; "
                               "prepare the package again")
        if verify_hashes and file_sha256(p) != entry["sha256"]:
            raise PackageError(f"{p} does not match its sha256 in the manifest; prepare the package again")
        sizes[name] = entry["size"]
    for tname, tensor in manifest.get("tensors", {}).items():
        for chunk in tensor.get("chunks", []):
            size = sizes.get(chunk.get("file"))
            if size is None:
                raise PackageError(f"{path}: tensor {tname} lives in {chunk.get('file')!r}, which the manifest does "
                                   "not list; prepare the package again")
            for plane, (offset, length) in chunk.get("planes", {}).items():
                if offset < 0 or offset + length > size:
                    raise PackageError(f"{path}: tensor {tname} plane {plane} lies outside {chunk['file']}; prepare "
                                       "the package again")
    return manifest


def add_package(path: Path, models_dir: Path, verify_hashes: bool = True) -> ModelEntry:
    """Check a package and place it under models_dir/<dir>/ (shards hard-linked where possible)."""
    manifest = check_package(path, verify_hashes)
    name = dir_name(manifest)
    out = models_dir / name
    for entry in manifest["files"]:
        link_or_copy(path / entry["path"], out / entry["path"])
    manifest_bytes = (path / fmt.MANIFEST_FILE).read_bytes()
    write_bytes(out / fmt.MANIFEST_FILE, manifest_bytes)
    return ModelEntry(
        dir=name, name=str(manifest.get("name", name)), package_id=manifest["package_id"],
        size=sum(int(f["size"]) for f in manifest["files"]) + len(manifest_bytes), files=len(manifest["files"]) + 1,
        manifest_size=len(manifest_bytes), manifest_sha256=sha256_bytes(manifest_bytes),
        format_version=int(manifest["format_version"]))


def index_json(entries: list[ModelEntry]) -> bytes:
    """models/index.json: the first entry is the current version (the one the page installs or updates to)."""
    ids = [e.package_id for e in entries]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise PackageError(f"the same package was given twice (package_id {sorted(dupes)[0][:12]}...); give each "
                           "version once")
    index = {
        "format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION,
        "current": entries[0].dir if entries else None,
        "models": [e.to_json() for e in entries],
    }
    return (json.dumps(index, indent=1) + "\n").encode()


def package_fingerprint(path: Path) -> list[Any]:
    """What identifies a package's content without hashing its shards: the manifest's bytes (which hold every
    file's sha256) and each file's size and mtime (a file replaced behind the manifest's back changes mtime)."""
    manifest_path = path / fmt.MANIFEST_FILE
    if not manifest_path.is_file():
        return [str(path), None]
    data = manifest_path.read_bytes()
    try:
        files = [f["path"] for f in json.loads(data).get("files", [])]
    except (ValueError, AttributeError, TypeError):
        files = []
    stats = []
    for f in files:
        p = path / str(f)
        st = p.stat() if p.is_file() else None
        stats.append([f, st.st_size if st else None, st.st_mtime_ns if st else None])
    return [str(path.resolve()), sha256_bytes(data), stats]
