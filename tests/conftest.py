"""Shared fixtures: the default model's GGUF and package, and tiny random checkpoints written by transformers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/tiny_models.py

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
