"""`fieldllm build`: what dist/ holds, that it is written all at once, and that an unchanged re-run is a no-op."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import struct
import time
from pathlib import Path

import pytest
from pwa_env import ROOT

from app.build import build
from app.build import wasm as wasm_build
from app.build.errors import MissingSourceError, PackageError, WasmBuildError
from app.cli import main


@pytest.fixture(scope="module")
def dist(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build([packages["v1"], packages["v2"]], tmp_path_factory.mktemp("build") / "dist").out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_index_html_has_no_inline_script_but_the_import_map(dist: Path) -> None:
    html = (dist / "index.html").read_text()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    inline = [(attrs, body) for attrs, body in scripts if body.strip()]
    assert [a.strip() for a, _ in inline] == ['type="importmap"']
    assert [a.strip() for a, b in scripts if not b.strip()] == ['type="module" src="app/ui/main.js"']
    assert not re.search(r"\son\w+=", html), "no inline event handlers"
    assert "style=" not in html and "<style" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "everything from the origin"
    # the import map resolves to vendored copies, and the CSP the build recommends allows exactly its text
    imports = json.loads(inline[0][1])["imports"]
    info = json.loads((dist / "build-info.json").read_text())
    digest = base64.b64encode(hashlib.sha256(inline[0][1].encode()).digest()).decode()
    assert info["script_hashes"] == [f"'sha256-{digest}'"]
    assert f"script-src 'self' 'wasm-unsafe-eval' 'sha256-{digest}'" in info["content_security_policy"]
    for name, url in imports.items():
        copied = (dist / url).read_bytes()
        pkg = json.loads((ROOT / "node_modules" / name / "package.json").read_text())
        assert info["vendor"][name] == pkg["version"]
        assert copied == (ROOT / "node_modules" / name / url.split(f"vendor/{name}/")[1]).read_bytes()


def test_web_app_manifest_and_icons(dist: Path) -> None:
    m = json.loads((dist / "manifest.webmanifest").read_text())
    assert m["display"] == "standalone" and m["start_url"] == "./" and m["name"] and m["short_name"]
    assert m["theme_color"].startswith("#") and m["background_color"].startswith("#")
    sizes = {i["sizes"]: i["src"] for i in m["icons"] if i["type"] == "image/png"}
    for size in ("192x192", "512x512"):
        png = (dist / sizes[size]).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = struct.unpack(">II", png[16:24])
        assert f"{w}x{h}" == size


def test_precache_lists_every_shell_file_with_size_and_hash(dist: Path) -> None:
    listed = json.loads((dist / "precache-manifest.json").read_text())
    entries = {e["url"]: e for e in listed["files"]}
    on_disk = {p.relative_to(dist).as_posix() for p in dist.rglob("*") if p.is_file()}
    not_shell = {p for p in on_disk if p.startswith("models/")} | {"sw.js", "precache-manifest.json",
                                                                   "build-info.json"}
    assert set(entries) == on_disk - not_shell
    for url, e in entries.items():
        data = (dist / url).read_bytes()
        assert e["size"] == len(data) and e["sha256"] == _sha(data), url
    sw = (dist / "sw.js").read_text()
    assert "@precache-manifest" not in sw and listed["build_id"] in sw
    for url, e in entries.items():
        assert json.dumps(url) in sw and e["sha256"] in sw
    # the engine, its shaders and the UI are all in the shell
    assert {"app/engine/client.js", "app/engine/worker.js", "app/ui/main.js", "index.html"} <= set(entries)
    # every .wgsl the engine fetches (pipelines.js: each kernel of kernels.json and the library files it includes)
    kernels = json.loads((ROOT / "webgpu_shaders" / "kernels.json").read_text())["kernels"]
    fetched = {*kernels, *(f for k in kernels.values() for f in k.get("include", []))}
    assert {f"webgpu_shaders/{f}" for f in fetched} <= set(entries)
    # the kernels' declaration (the engine imports it as a JSON module) and the engine's public modules
    assert {"webgpu_shaders/kernels.json", "app/engine/index.js", "app/engine/integrity.js"} <= set(entries)


def test_models_and_their_index(dist: Path, packages: dict[str, Path]) -> None:
    index = json.loads((dist / "models" / "index.json").read_text())
    assert index["format"] == "fieldllm-models" and index["format_version"] == 1
    first, second = index["models"]
    assert index["current"] == first["dir"]  # the first --package is the current version
    for entry, pkg in ((first, packages["v1"]), (second, packages["v2"])):
        manifest = json.loads((pkg / "manifest.json").read_text())
        folder = dist / "models" / entry["dir"]
        assert entry["package_id"] == manifest["package_id"] and entry["dir"].endswith(manifest["package_id"][:12])
        assert entry["url"] == f"models/{entry['dir']}/"
        assert entry["manifest_sha256"] == _sha((folder / "manifest.json").read_bytes())
        assert entry["files"] == len(manifest["files"]) + 1
        assert entry["size"] == sum(f["size"] for f in manifest["files"]) + entry["manifest_size"]
        for f in manifest["files"]:
            assert _sha((folder / f["path"]).read_bytes()) == f["sha256"]


def test_unchanged_rerun_is_a_fast_noop_and_a_change_rebuilds(packages: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "dist"
    first = build([packages["v1"]], out)
    assert not first.up_to_date
    stamp = (out / "sw.js").stat().st_mtime_ns
    started = time.perf_counter()
    again = build([packages["v1"]], out)
    assert again.up_to_date and again.build_id == first.build_id
    assert time.perf_counter() - started < 1.0
    assert (out / "sw.js").stat().st_mtime_ns == stamp
    changed = build([packages["v2"]], out)  # another model version: the shell is the same, the index is not
    assert not changed.up_to_date and changed.build_id == first.build_id
    assert json.loads((out / "models" / "index.json").read_text())["models"][0]["package_id"] != \
        first.models[0]["package_id"]


def test_a_failed_build_leaves_the_previous_dist_untouched(packages: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "dist"
    build([packages["v1"]], out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.stat().st_size < 1e6}
    damaged = shutil.copytree(packages["v2"], tmp_path / "damaged")
    shard = next(damaged.glob("weights-*.bin"))
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="sha256"):
        build([damaged], out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.stat().st_size < 1e6}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged", "dist"]  # no stage folder left behind


def test_cli_build(packages: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dist"
    assert main(["build", "--package", str(packages["v1"]), "--out", str(out)]) == 0
    assert (out / "index.html").is_file() and (out / "sw.js").is_file()
    assert main(["build", "--package", str(packages["v1"]), "--out", str(out)]) == 0
    assert "up to date" in capsys.readouterr().err
    assert main(["build", "--no-model", "--out", str(tmp_path / "bare")]) == 0
    assert json.loads((tmp_path / "bare" / "models" / "index.json").read_text())["current"] is None
    assert main(["build", "--package", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) != 0
    assert "not a model package" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_cpu_engine_wasm_is_compiled_shipped_and_precached(dist: Path) -> None:
    wasm = (dist / "app/engine/cpu/cpu_engine.wasm").read_bytes()
    assert wasm[:4] == b"\0asm", "a WebAssembly module"
    assert wasm == (ROOT / "app/engine/cpu/cpu_engine.wasm").read_bytes()
    listed = {e["url"]: e for e in json.loads((dist / "precache-manifest.json").read_text())["files"]}
    entry = listed["app/engine/cpu/cpu_engine.wasm"]
    assert entry["size"] == len(wasm) and entry["sha256"] == _sha(wasm)
    assert {"app/engine/cpu/model.js", "app/engine/cpu/probe.js", "app/engine/choice.js"} <= set(listed)
    mt = (dist / "app/engine/cpu/cpu_engine_mt.wasm").read_bytes()  # the threaded build, for isolated pages
    assert listed["app/engine/cpu/cpu_engine_mt.wasm"]["sha256"] == _sha(mt)
    # the C source is the build's input, not the app's
    assert not (dist / "app/engine/cpu/cpu_engine.c").exists() and not (dist / "app/engine/cpu/cpu_engine.h").exists()


def test_a_stale_wasm_is_compiled_again_and_no_compiler_is_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = ROOT / "app" / "engine"
    out = engine / "cpu" / "cpu_engine.wasm"
    source = engine / "cpu" / "cpu_engine.c"

    def make_stale() -> None:
        os.utime(out, (time.time(), source.stat().st_mtime - 10))

    assert wasm_build.ensure_cpu_engine(engine) == out
    make_stale()
    wasm_build.ensure_cpu_engine(engine)  # build_wasm.sh writes a temporary file, then renames it
    assert out.stat().st_mtime > source.stat().st_mtime and out.read_bytes()[:4] == b"\0asm"
    # a machine with bash but without clang and lld: the build stops with one line saying what to install
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "dirname"):
        (tools / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    make_stale()
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(WasmBuildError) as e:
        wasm_build.ensure_cpu_engine(engine)
    assert "\n" not in str(e.value) and "apt-get install -y clang lld" in str(e.value), str(e.value)
    monkeypatch.undo()
    wasm_build.ensure_cpu_engine(engine)  # leave a fresh module behind
    # another engine folder must bring its own module
    with pytest.raises(MissingSourceError, match=r"build it with scripts/build_wasm\.sh"):
        wasm_build.ensure_cpu_engine(tmp_path / "engine")
