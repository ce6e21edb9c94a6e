"""The npm libraries the engine imports, copied from node_modules into dist/vendor/ (nothing from a CDN).

Each package's browser ES-module entry is found through its package.json "exports", the version is checked against
the pin in the project's package.json, and the import map the page uses to resolve the bare specifiers is built here.
An entry may import the package's own modules by relative path (copied beside it, same layout: the browser resolves
them from the entry's URL); a bare import (another package) is refused, since nothing here bundles.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MissingNodeModulesError

VENDORED = ("@huggingface/tokenizers", "@huggingface/jinja", "@cfworker/json-schema", "@mlc-ai/web-xgrammar")
# bare imports a package makes only when it runs under Node (emscripten's ENVIRONMENT_IS_NODE branch of
# web-xgrammar's UMD bundle, whose WASM is inlined): a browser never reaches them, so they are not refused
_NODE_ONLY_IMPORTS = {"@mlc-ai/web-xgrammar": frozenset({"module"})}
_CONDITIONS = ("browser", "import", "default")  # what a browser loading an ES module matches, in order
# a static or dynamic import of another module: relative ones are followed, bare ones refused (we do not bundle)
_IMPORT = re.compile(r"""(?:^|[;\s])(?:import|export)\s*(?:[\w*{}\s,$]+from\s*)?["']([^"']+)["']"""
                     r"""|import\(\s*["']([^"']+)""", re.MULTILINE)


@dataclass(frozen=True)
class VendorFile:
    package: str  # npm name, the bare specifier
    version: str
    source: Path  # the entry file in node_modules
    url: str  # its path in dist/, relative to the site root
    license: Path | None
    modules: tuple[tuple[Path, str], ...] = ()  # (source, url) of the package's other modules the entry imports


def _resolve_export(target: Any) -> str | None:
    if isinstance(target, str):
        return target
    if isinstance(target, dict):
        for cond in _CONDITIONS:
            if cond in target and (found := _resolve_export(target[cond])):
                return found
    return None


def _entry(pkg_json: dict[str, Any]) -> str | None:
    exports = pkg_json.get("exports")
    if isinstance(exports, dict) and "." in exports:
        exports = exports["."]
    found = _resolve_export(exports) if exports is not None else None
    browser = pkg_json.get("browser")
    return found or (browser if isinstance(browser, str) else None) or pkg_json.get("module") or pkg_json.get("main")


def find_vendor_files(root: Path) -> list[VendorFile]:
    """The entry module of each vendored package, checked against the versions package.json pins."""
    pins = json.loads((root / "package.json").read_text()).get("dependencies", {})
    out = []
    for name in VENDORED:
        folder = root / "node_modules" / name
        meta_path = folder / "package.json"
        if not meta_path.is_file():
            raise MissingNodeModulesError(f"{folder} is missing: run `npm ci` in {root} (the app vendors {name})")
        meta = json.loads(meta_path.read_text())
        if name in pins and meta.get("version") != pins[name]:
            raise MissingNodeModulesError(f"node_modules has {name} {meta.get('version')}, package.json pins "
                                          f"{pins[name]}: run `npm ci` in {root}")
        entry = _entry(meta)
        source = (folder / entry).resolve() if entry else None
        if source is None or not source.is_file() or folder.resolve() not in source.parents:
            raise MissingNodeModulesError(f"{name} names no browser ES module entry that exists ({entry!r}): "
                                          f"reinstall it with `npm ci`")
        modules = _relative_modules(source, folder.resolve(), name)
        licence = next((folder / n for n in ("LICENSE", "LICENSE.md", "LICENSE.txt") if (folder / n).is_file()), None)
        url = f"vendor/{name}/{source.relative_to(folder.resolve()).as_posix()}"
        extra = tuple((p, f"vendor/{name}/{p.relative_to(folder.resolve()).as_posix()}") for p in modules)
        out.append(VendorFile(name, str(meta["version"]), source, url, licence, extra))
    return out


def _relative_modules(entry: Path, folder: Path, name: str) -> list[Path]:
    """Every module of the package that `entry` imports, directly or not (sorted; the entry itself excluded)."""
    seen = {entry}
    todo = [entry]
    while todo:
        module = todo.pop()
        for spec in (a or b for a, b in _IMPORT.findall(module.read_text(encoding="utf-8"))):
            if spec in _NODE_ONLY_IMPORTS.get(name, ()):
                continue
            if not spec.startswith(("./", "../")):
                raise MissingNodeModulesError(f"{module} imports {spec!r}; the build copies a package's own modules "
                                              f"only, not other packages: pin a version of {name} that bundles them")
            target = (module.parent / spec).resolve()
            if folder not in target.parents or not target.is_file():
                raise MissingNodeModulesError(f"{module} imports {spec!r}, which is not a file of {name}: "
                                              "reinstall it with `npm ci`")
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return sorted(seen - {entry})


def import_map(files: list[VendorFile]) -> dict[str, Any]:
    """Bare specifier -> dist URL, relative to index.html (the page and every module it imports share the root)."""
    return {"imports": {f.package: f"./{f.url}" for f in files}}
