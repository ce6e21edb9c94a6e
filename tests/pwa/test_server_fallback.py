"""Devices that cannot run the model themselves (no WebGPU, or a GPU too small, and no WebAssembly for the CPU
engine), or whose user prefers the server: the app served by `fieldllm serve` answers through the server's
OpenAI-compatible API, with the same chat code, and says so; with WebGPU the same app answers on the device and never
calls the API."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from app_page import AppPage
from pwa_env import APP_OPTIONS, NO_WASM, PREFER_SERVER, SMALL_GPU

from app.server.app import create_app
from app.server.local import LocalBackend
from app.server.settings import Settings
from model_prep.reference import Engine, load


class ServedApp:
    """`fieldllm serve`'s app (dist/ + /v1/ on the reference engine) under uvicorn on a free loopback port. Has the
    two members AppPage uses of a DistServer: url() and nothing else."""

    def __init__(self, dist: Path, engine: Engine) -> None:
        settings = replace(Settings(), dist=dist, queue_size=2)
        app = create_app(settings, LocalBackend(engine, settings))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{path}"

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def engine(packages: dict[str, Path]) -> Engine:
    return load(packages["v1"], context=1024)


@pytest.fixture
def served(dists: dict[str, Path], engine: Engine) -> Iterator[ServedApp]:
    with ServedApp(dists["v1"], engine) as s:
        yield s


def _open(browser: Any, served: ServedApp, init_script: str | None = None) -> tuple[AppPage, list[Any], list[str]]:
    """The app in a fresh context; returns it, the /v1/ requests it makes, and the paths of all its requests."""
    context = browser.new_context()
    context.add_init_script(f"globalThis.FIELDLLM_OPTIONS = {json.dumps(APP_OPTIONS)};")
    if init_script:
        context.add_init_script(init_script)
    app = AppPage(context, served)  # type: ignore[arg-type]
    api_calls: list[Any] = []
    paths: list[str] = []
    context.on("request", lambda r: api_calls.append(r) if "/v1/" in r.url else None)
    context.on("request", lambda r: paths.append(r.url.removeprefix(served.url(""))))
    return app.open(), api_calls, paths


@pytest.mark.slow
def test_without_webgpu_or_webassembly_the_server_answers(browser_without_webgpu: Any, served: ServedApp,
                                                           engine: Engine) -> None:
    app, api_calls, _ = _open(browser_without_webgpu, served, NO_WASM)
    try:
        assert app.wait_problem_or("ready-server", "setup") == "ready-server", app.problem_text()
        assert app.text("#ready-title") == "Answering from the server"
        assert app.text("#ready-where") == f"the server at {served.url('')}"
        assert app.text("#ready-name") == engine.name
        assert "WebGPU" in app.text("#notice") and "your questions go to the server" in app.text("#notice")
        assert "the CPU engine: this browser has no WebAssembly" in app.text("#notice")
        assert not app.page.is_visible("#ready-storage")  # nothing of the model is on this device

        app.ask("Generator 2 tripped on overcurrent. What should I check?")
        answer = app.page.locator(".msg.assistant .text").last.text_content()  # as streamed, whitespace and all
        assert answer and answer.strip(), "an empty answer"
        posts = [r for r in api_calls if r.method == "POST"]
        assert [r.url for r in posts] == [served.url("/v1/chat/completions")]
        body = posts[0].post_data_json
        assert body["stream"] is True and body["model"] == engine.name
        # the server's answer is the reference engine's for exactly what the page sent (the package's defaults)
        expected = engine.generate(body["messages"], max_tokens=body["max_tokens"])
        assert answer == expected.text
        assert app.errors == []
    finally:
        app.context.close()


@pytest.mark.slow
def test_with_webgpu_the_same_app_answers_on_the_device(browser: Any, served: ServedApp) -> None:
    app, api_calls, _ = _open(browser, served)
    try:
        assert app.wait_problem_or("setup") == "setup", app.problem_text()
        app.page.click("#setup-download")
        assert app.wait_problem_or("ready") == "ready", app.problem_text()
        assert app.text("#ready-where") == "this device's GPU (WebGPU), offline"
        assert app.ask("Generator 2 tripped on overcurrent. What should I check?").strip()
        assert api_calls == [], [r.url for r in api_calls]
    finally:
        app.context.close()


@pytest.mark.slow
def test_gpu_too_small_and_no_webassembly_uses_the_server(browser: Any, served: ServedApp, engine: Engine) -> None:
    app, api_calls, paths = _open(browser, served, SMALL_GPU + NO_WASM)
    try:
        assert app.wait_problem_or("setup") == "setup", app.problem_text()
        app.page.click("#setup-download")  # the model's manifest says it needs more than this GPU allows
        assert app.wait_problem_or("ready-server") == "ready-server", app.problem_text()
        assert "this GPU allows" in app.text("#notice")
        assert app.ask("Generator 2 tripped on overcurrent. What should I check?").strip()
        assert [r.method for r in api_calls] == ["GET", "POST"]  # the model list, then the question
        assert not [p for p in paths if "/weights-" in p], "weights were downloaded for a GPU that cannot hold them"
        assert app.errors == []
    finally:
        app.context.close()


@pytest.mark.slow
def test_the_user_prefers_the_server(browser_without_webgpu: Any, served: ServedApp, engine: Engine) -> None:
    """The settings' "Answer with: the local server": the server answers although the CPU engine could, and the
    screen says it is the user's choice; nothing of the model is downloaded."""
    app, api_calls, paths = _open(browser_without_webgpu, served, PREFER_SERVER)
    try:
        assert app.wait_problem_or("ready-server", "setup") == "ready-server", app.problem_text()
        assert "as the settings ask" in app.text("#notice")
        assert app.page.input_value("#engine-preference") == "server"
        assert app.ask("What is the capital of France?").strip()
        assert [r.method for r in api_calls] == ["GET", "POST"]
        assert not [p for p in paths if p.startswith("/models/") and p != "/models/index.json"], paths
        assert app.errors == []
    finally:
        app.context.close()
