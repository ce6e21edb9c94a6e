"""Fixtures for the server tests: apps on the fake engine, live uvicorn servers on loopback, the real model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # app/ lives at the repository root
    sys.path.insert(0, str(ROOT))

from app.server.app import create_app  # noqa: E402
from app.server.local import LocalBackend  # noqa: E402
from app.server.settings import Settings  # noqa: E402

from .fake_engine import FakeEngine  # noqa: E402

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
# the Host names the test clients send (Starlette's TestClient and schemathesis say "testserver")
TEST_HOSTS = ("testserver", "127.0.0.1", "localhost")


def make_settings(**overrides: Any) -> Settings:
    base = Settings(dist=Path("/nonexistent/dist"), allow_host=TEST_HOSTS, queue_timeout=10.0)
    return replace(base, **overrides)


def fake_app(engine: FakeEngine | None = None, **overrides: Any) -> Starlette:
    settings = make_settings(**overrides)
    return create_app(settings, LocalBackend(engine or FakeEngine(), settings))


@pytest.fixture
def client() -> Iterator[TestClient]:
    """The app on a fake engine, through Starlette's in-process client."""
    with TestClient(fake_app()) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: Starlette) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def serve_fake() -> Iterator[Callable[..., str]]:
    """serve_fake(engine=None, **settings) -> base URL of a live server on a fake engine (stopped after the test)."""
    with ExitStack() as stack:
        yield lambda engine=None, **overrides: stack.enter_context(live_server(fake_app(engine, **overrides)))


def wait_healthy(url: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout} s")


@pytest.fixture(scope="session")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The --audit file of real_server."""
    return tmp_path_factory.mktemp("audit") / "audit.jsonl"


@pytest.fixture(scope="session")
def real_server(smollm2_package: Path, tmp_path_factory: pytest.TempPathFactory, audit_log: Path) -> Iterator[str]:
    """`fieldllm serve` on the real default model, started as the user would (a subprocess), on a free port."""
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    cmd = [sys.executable, "-m", "app.cli", "serve", "--package", str(smollm2_package), "--port", str(port),
           "--dist", str(log.parent / "no-dist"), "--context", "512", "--log-level", "warning",
           "--audit", str(audit_log)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url
    except RuntimeError as e:
        raise RuntimeError(f"{e}; log:\n{log.read_text()}") from None
    finally:
        process.terminate()
        process.wait(10)
