"""Fixtures for the PWA tests: tiny model packages, built dist/ folders, a controllable server, and Chromium.

The browser is Debian's Chromium driven by Playwright for Python (never `playwright install`). WebGPU runs on
SwiftShader there. The engine is the real one (app/engine).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from app_page import AppPage
from dist_server import DistServer
from pwa_env import APP_OPTIONS, ROOT

from app.build import build


def make_tiny_package(work: Path, name: str, seed: int) -> Path:
    """A random 4-layer Llama (transformers) through `fieldllm prepare --weights q4 --shard-size 64KiB`; the
    package's name is `name` (its folder's), the seed makes the version."""
    from tiny_models import make_hf

    from app.cli import main

    hf = make_hf(work / f"seed{seed}" / name, "llama", seed=seed, init_std=0.02, layers=4, hidden=128,
                 intermediate=256)
    config = json.loads((hf / "config.json").read_text())
    # the app's system prompts alone are ~200 tokens of this tiny tokenizer: give the model room (RoPE has no
    # learned positions, so a longer context costs nothing but KV memory)
    config["max_position_embeddings"] = 1024
    (hf / "config.json").write_text(json.dumps(config))
    out = work / f"seed{seed}" / "package"
    assert main(["prepare", str(hf), "--weights", "q4", "--shard-size", "64KiB", "--out", str(out)]) == 0
    return out


def drop_tensor(package: Path, out: Path, tensor: str) -> Path:
    """A copy of a package whose manifest lacks one tensor: every file verifies, but no engine can load it."""
    shutil.copytree(package, out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["tensors"][tensor]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("pwa_packages")
    v1 = make_tiny_package(work, "tiny-assistant", seed=1)
    v2 = make_tiny_package(work, "tiny-assistant", seed=2)
    broken = drop_tensor(v2, work / "v2-broken", "output_norm.weight")
    return {"v1": v1, "v2": v2, "v2_broken": broken}


@pytest.fixture(scope="session")
def engine_dir() -> Path:
    return ROOT / "app" / "engine"


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory, packages: dict[str, Path], engine_dir: Path) -> dict[str, Path]:
    """dist/ folders: the app with v1, with v2 published, with a v2 that verifies but does not load."""
    work = tmp_path_factory.mktemp("pwa_dists")
    out = {}
    for key in ("v1", "v2", "v2_broken"):
        out[key] = build([packages[key]], work / key, engine_dir=engine_dir).out
    return out


@pytest.fixture
def server(dists: dict[str, Path]) -> Iterator[DistServer]:
    srv = DistServer(dists["v1"]).start()
    yield srv
    srv.stop()


@pytest.fixture
def new_app(browser: Any, server: DistServer) -> Iterator[Callable[..., AppPage]]:
    """new_app(init_script=None) -> AppPage in a fresh browser context (its own storage, service workers, cache)."""
    contexts: list[Any] = []

    def make(init_script: str | None = None, browser_: Any = None) -> AppPage:
        context = (browser_ or browser).new_context()
        context.add_init_script(f"globalThis.FIELDLLM_OPTIONS = {json.dumps(APP_OPTIONS)};")
        if init_script:
            context.add_init_script(init_script)
        contexts.append(context)
        return AppPage(context, server)

    yield make
    for c in contexts:
        c.close()
