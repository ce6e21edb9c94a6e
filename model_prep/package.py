"""Read a model package: manifest (format-checked), file verification, tensors (dequantized for the CPU engine)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import format as fmt
from . import quant
from .checkpoint import file_sha256
from .config import ModelConfig
from .errors import PackageError


@dataclass
class Package:
    path: Path
    manifest: dict[str, Any]
    config: ModelConfig

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def generation(self) -> dict[str, Any]:
        return dict(self.manifest.get("generation", {}))

    @property
    def chat_template(self) -> str:
        return str(self.manifest["chat_template"])

    @property
    def tokenizer_path(self) -> Path:
        return self.path / str(self.manifest.get("tokenizer", fmt.TOKENIZER_FILE))

    def verify(self, hashes: bool = True) -> None:
        """Every listed file exists with its size (and sha256); raises PackageError naming the first bad one."""
        for entry in self.manifest["files"]:
            p = self.path / entry["path"]
            if not p.is_file():
                raise PackageError(f"{p} is missing; prepare the package again")
            if p.stat().st_size != entry["size"]:
                raise PackageError(f"{p} has {p.stat().st_size} bytes, the manifest says {entry['size']}; "
                                   "prepare the package again")
            if hashes and file_sha256(p) != entry["sha256"]:
                raise PackageError(f"{p} does not match its sha256 in the manifest; prepare the package again")

    def tensor_planes(self, name: str) -> list[tuple[tuple[int, int], quant.Planes]]:
        """[(row range, planes)] of each chunk of a tensor, memory-mapped from the shards."""
        entry = self.manifest["tensors"].get(name)
        if entry is None:
            raise PackageError(f"the package has no tensor {name}; prepare the package again")
        out = []
        for chunk in entry["chunks"]:
            path = self.path / chunk["file"]
            planes: quant.Planes = {}
            for plane, (offset, nbytes) in chunk["planes"].items():
                planes[plane] = np.memmap(path, dtype=np.uint32, mode="r", offset=offset, shape=(nbytes // 4,))
            out.append(((int(chunk["rows"][0]), int(chunk["rows"][1])), planes))
        return out

    def tensor_f32(self, name: str) -> npt.NDArray[np.float32]:
        """The tensor's values as f32, numpy shape as in the manifest."""
        entry = self.manifest["tensors"][name]
        shape = tuple(entry["shape"])
        cols = shape[-1]
        parts = [quant.dequantize(entry["storage"], planes, stop - start, cols)
                 for (start, stop), planes in self.tensor_planes(name)]
        return np.concatenate(parts, axis=0).reshape(shape)


def read_manifest(path: Path) -> dict[str, Any]:
    mpath = path / fmt.MANIFEST_FILE
    if not mpath.is_file():
        raise PackageError(f"{path} is not a model package (no {fmt.MANIFEST_FILE}); create one with "
                           "`fieldllm prepare --out DIR`")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PackageError(f"{mpath} is unreadable ({e}); prepare the package again") from e
    if not isinstance(manifest, dict) or manifest.get("format") != fmt.FORMAT_NAME:
        raise PackageError(f"{mpath} is not a {fmt.FORMAT_NAME} manifest; prepare the package again")
    version = manifest.get("format_version")
    if version not in fmt.SUPPORTED_FORMAT_VERSIONS:
        raise PackageError(f"{mpath} has format version {version!r}; this fieldllm reads version(s) "
                           f"{', '.join(map(str, fmt.SUPPORTED_FORMAT_VERSIONS))}: prepare it again with this version")
    return manifest


def open_package(path: Path | str) -> Package:
    path = Path(path)
    manifest = read_manifest(path)
    config = ModelConfig.from_dict(manifest["config"])
    if config.format_version > manifest["format_version"]:
        raise PackageError(f"{path / fmt.MANIFEST_FILE} says format version {manifest['format_version']} but its "
                           f"config needs version {config.format_version} ({config.version_features}); prepare it "
                           "again")
    k_tensor = next((n for n, t in manifest["tensors"].items() if t["storage"] in fmt.K_STORAGE_TYPES), None)
    if k_tensor is not None and manifest["format_version"] < fmt.FORMAT_VERSION_K_QUANTS:
        raise PackageError(f"{path / fmt.MANIFEST_FILE} says format version {manifest['format_version']} but tensor "
                           f"{k_tensor} is stored as {manifest['tensors'][k_tensor]['storage']} (version "
                           f"{fmt.FORMAT_VERSION_K_QUANTS}); prepare it again")
    return Package(path, manifest, config)
