"""Fixtures for the kernel tests. No adapter is a failure, not a skip: CI must not pass without running kernels."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # model_prep (the quantizer) lives at the repository root
    sys.path.insert(0, str(ROOT))

from .gpu import NO_ADAPTER, Gpu, NoAdapterError, shared_gpu  # noqa: E402


@pytest.fixture(scope="session")
def gpu() -> Gpu:
    try:
        return shared_gpu()
    except NoAdapterError:
        pytest.fail(NO_ADAPTER, pytrace=False)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's name: reproducible, and different per test."""
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))
