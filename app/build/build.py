"""`fieldllm build`: everything the browser needs, in one folder that any static server can serve.

dist/
  index.html, manifest.webmanifest, icons/      the page (Jinja2) and what makes it installable
  app/ui/**, app/engine/**, webgpu_shaders/     ES modules, WGSL and kernels.json, same paths as in the repository;
                                                app/engine/cpu/cpu_engine.wasm compiled first (wasm.py)
  app/field/*.js, tasks.json, rules.json        field answers: modules and data (rules.json from --rules, checked)
  vendor/<npm name>/...                         the npm libraries the engine imports (import map in index.html)
  sw.js, precache-manifest.json                 the service worker with the shell's file list (sizes, sha256)
  models/index.json, models/<name>-<id>/        model packages and which version is current
  build-info.json                               build id, content-security-policy for the server, input fingerprint,
                                                the rules file's version and sha256

The folder is written beside `out` and moved into place when complete. An unchanged re-run compares a fingerprint
of every input (file contents for the small ones, size and mtime for model shards) and returns at once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from model_prep.fsutil import replace_dir
from service_worker import precache

from . import field as field_data
from . import icons, models, render, vendor, wasm
from .errors import InputError, MissingSourceError
from .files import remove_stale_stages, sha256_bytes, walk_files, write_bytes

ROOT = Path(__file__).resolve().parents[2]
BUILD_INFO = "build-info.json"
FORMAT_VERSION = 2  # of this build's layout; part of the fingerprint, bump when the output changes shape
UI_SUFFIXES = (".js", ".css")
ENGINE_SUFFIXES = (".js", ".mjs", ".json", ".wgsl", ".wasm")
SHADER_SUFFIXES = (".wgsl", ".json")  # the kernels and their declaration (kernels.json, imported by the engine)
ICON_SUFFIXES = (".svg", ".png")
DEFAULT_MODELS = Path("build/models")  # where `fieldllm prepare` writes packages by default


@dataclass
class BuildResult:
    out: Path
    up_to_date: bool  # nothing changed: dist/ was left as it was
    build_id: str
    models: list[dict[str, Any]] = field(default_factory=list)
    shell_files: int = 0
    shell_bytes: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Sources:
    """Where the app's inputs are."""

    root: Path
    engine: Path

    @property
    def templates(self) -> Path:
        return self.root / "app" / "templates"

    @property
    def ui(self) -> Path:
        return self.root / "app" / "ui"

    @property
    def icons(self) -> Path:
        return self.root / "app" / "icons"

    @property
    def shaders(self) -> Path:
        return self.root / "webgpu_shaders"

    @property
    def field(self) -> Path:
        return self.root / "app" / "field"

    def check(self) -> None:
        for need in (self.templates / "index.html", self.templates / "manifest.webmanifest", self.ui / "main.js",
                     self.engine / "client.js", self.engine / "gpu" / "probe.js", self.engine / "cpu" / "model.js",
                     self.field / "index.js",
                     self.field / "tasks.json", precache.SOURCE):
            if not need.is_file():
                raise MissingSourceError(f"{need} is missing: the app cannot be built without it (a partial checkout?)")

    def shell_sources(self) -> dict[str, Path]:
        """dist path -> source file, for every file copied verbatim into the shell."""
        out: dict[str, Path] = {}
        for p in walk_files(self.ui, UI_SUFFIXES):
            out[f"app/ui/{p.relative_to(self.ui).as_posix()}"] = p
        for p in walk_files(self.engine, ENGINE_SUFFIXES):
            out[f"app/engine/{p.relative_to(self.engine).as_posix()}"] = p
        for p in walk_files(self.shaders, SHADER_SUFFIXES):
            out[f"webgpu_shaders/{p.relative_to(self.shaders).as_posix()}"] = p
        for p in walk_files(self.icons, ICON_SUFFIXES):
            out[f"icons/{p.relative_to(self.icons).as_posix()}"] = p
        return out


def resolve_packages(packages: Sequence[Path], root: Path) -> list[Path]:
    """The packages to ship. None given: the one package under build/models/, if there is exactly one."""
    if packages:
        return [Path(p) for p in packages]
    found = sorted(p.parent for p in (root / DEFAULT_MODELS).glob("*/manifest.json"))
    if len(found) == 1:
        return found
    if not found:
        raise InputError("no model package to ship: run `fieldllm prepare` first, or pass --package DIR "
                         "(--no-model builds the app alone)")
    raise InputError(f"several packages under {root / DEFAULT_MODELS}: say which with --package DIR (the first "
                     f"given is the current version): {', '.join(str(p) for p in found)}")


def fingerprint(sources: Sources, shell: dict[str, Path], vendored: list[vendor.VendorFile],
                packages: list[Path]) -> str:
    """Changes whenever any input of the build changes (the build's own code included)."""
    own = [*walk_files(Path(__file__).parent, (".py",)), *walk_files(precache.SOURCE.parent, (".py", ".js")),
           *walk_files(sources.field, (".py",))]  # the field code checks the rules file
    modules = [p for v in vendored for p, _ in v.modules]
    small = sorted({*shell.values(), *own, *(v.source for v in vendored), *modules,
                    *walk_files(sources.templates, ("",)), sources.root / "package.json"})
    state = {
        "format": FORMAT_VERSION,
        "files": [[str(p), sha256_bytes(p.read_bytes())] for p in small],
        "shell": sorted(shell),
        "vendor": [[v.package, v.version, v.url] for v in vendored],
        "packages": [models.package_fingerprint(p) for p in packages],
    }
    return sha256_bytes(json.dumps(state, sort_keys=True).encode())


def _read_build_info(out: Path) -> dict[str, Any]:
    try:
        info = json.loads((out / BUILD_INFO).read_text())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _render_shell(sources: Sources, shell: dict[str, Path], vendored: list[vendor.VendorFile],
                  info: render.AppInfo) -> tuple[dict[str, bytes], str, str]:
    """Every shell file's bytes (dist path -> bytes), the build id and the import map text."""
    files = {path: src.read_bytes() for path, src in shell.items()}
    for v in vendored:
        files[v.url] = v.source.read_bytes()
        for source, url in v.modules:
            files[url] = source.read_bytes()
        if v.license:
            files[f"vendor/{v.package}/{v.license.name}"] = v.license.read_bytes()
    files.update(icons.icon_files())
    env = render.environment(sources.templates)
    files["manifest.webmanifest"] = render.render_manifest(env, info).encode()
    # index.html names the build it belongs to, so the id is taken over everything else
    ident = precache.build_id(precache.entries_for(files))
    imports = render.import_map_text(vendor.import_map(vendored))
    files["index.html"] = render.render_index(env, info, imports, ident).encode()
    return files, ident, imports


def build(packages: Sequence[Path] = (), out: Path = Path("dist"), *, root: Path = ROOT,
          engine_dir: Path | None = None, with_models: bool = True, verify_hashes: bool = True,
          force: bool = False, log: TextIO | None = None, rules: Path | None = None) -> BuildResult:
    """Render the PWA into `out`. The first package is the current model version; `rules` is the field answers'
    rules file to ship (default app/field/rules.json), checked before anything is written."""
    started = time.perf_counter()
    log = log or sys.stderr
    out = Path(out)
    sources = Sources(root, Path(engine_dir) if engine_dir else root / "app" / "engine")
    sources.check()
    wasm.ensure_cpu_engine(sources.engine)  # before the shell is listed: the .wasm is one of its files
    package_dirs = resolve_packages(packages, root) if with_models else []
    rules_path = Path(rules) if rules else sources.field / "rules.json"
    rules_info = field_data.check(rules_path, sources.field / "tasks.json")
    shell = {**sources.shell_sources(), **field_data.shell_sources(sources.field, rules_path)}
    vendored = vendor.find_vendor_files(root)
    key = fingerprint(sources, shell, vendored, package_dirs)
    previous = _read_build_info(out)
    if not force and previous.get("fingerprint") == key and (out / "sw.js").is_file():
        print(f"{out} is up to date; nothing to do", file=log)
        shell_info = previous.get("shell", {})
        return BuildResult(out, True, str(previous.get("build_id", "")), list(previous.get("models", [])),
                           int(shell_info.get("files", 0)), int(shell_info.get("bytes", 0)),
                           time.perf_counter() - started)

    remove_stale_stages(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.stage-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        info = render.AppInfo()
        files, ident, imports = _render_shell(sources, shell, vendored, info)
        for path, data in files.items():
            write_bytes(stage / path, data)
        entries = precache.entries_for(files)
        write_bytes(stage / "sw.js", precache.render_service_worker(entries, ident).encode())
        write_bytes(stage / "precache-manifest.json", precache.manifest_json(entries, ident))
        model_entries = [models.add_package(p, stage / "models", verify_hashes) for p in package_dirs]
        write_bytes(stage / models.INDEX_FILE, models.index_json(model_entries))
        script_hashes = [render.csp_hash(imports)]
        models_json = [m.to_json() for m in model_entries]
        build_info = {
            "build_id": ident, "fingerprint": key,
            "content_security_policy": render.content_security_policy(script_hashes),
            "script_hashes": script_hashes,
            "models": models_json,
            "shell": {"files": len(entries), "bytes": sum(e.size for e in entries)},
            "vendor": {v.package: v.version for v in vendored},
            "rules": rules_info.to_json(),
        }
        write_bytes(stage / BUILD_INFO, (json.dumps(build_info, indent=1) + "\n").encode())
        replace_dir(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    result = BuildResult(out, False, ident, models_json, len(entries), sum(e.size for e in entries),
                         time.perf_counter() - started)
    names = ", ".join(f"{m['name']} ({m['package_id'][:12]})" for m in result.models) or "no model"
    print(f"built {out} in {result.seconds:.2f} s: {result.shell_files} shell files "
          f"({result.shell_bytes / 1024:.0f} KiB), {names}", file=log)
    return result
