"""A new app shell reaches a running app through the service worker's update flow: it installs in the background
(fetching only the files that changed), waits, the page offers a reload, and the reload keeps the conversation --
even when it is accepted while an answer is being written."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from pwa_env import ROOT

from app.build import build

MARKER = "/* app update test */"


def _source_copy(dest: Path) -> Path:
    """The parts of the repository `fieldllm build` reads, copied so that the test can change one."""
    for rel in ("app/templates", "app/ui", "app/icons", "app/field", "webgpu_shaders"):
        shutil.copytree(ROOT / rel, dest / rel)
    shutil.copy2(ROOT / "package.json", dest / "package.json")
    os.symlink(ROOT / "node_modules", dest / "node_modules")
    return dest


@pytest.mark.slow
def test_new_shell_installs_in_background_and_reload_keeps_the_conversation(
        new_app: Any, server: Any, packages: Any, engine_dir: Path, tmp_path: Path) -> None:
    src = _source_copy(tmp_path / "src")
    first = build([packages["v1"]], tmp_path / "dist-a", root=src, engine_dir=engine_dir)
    server.publish(first.out)
    app = new_app()
    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    app.wait_controlled()
    first_answer = app.ask("Generator 2 tripped on overcurrent.")

    css = src / "app" / "ui" / "style.css"
    css.write_text(css.read_text() + MARKER + "\n")
    second = build([packages["v1"]], tmp_path / "dist-b", root=src, engine_dir=engine_dir)
    assert second.build_id != first.build_id
    server.publish(second.out)
    server.reset_log()
    app.page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.update())")
    app.page.wait_for_selector("#app-update:not([hidden])", timeout=30_000)
    # the new worker fetched only what changed (index.html names the build, so it changes too)
    assert sorted(p for p in server.log if p != "/sw.js") == ["/app/ui/style.css", "/index.html"]

    # accept the update while an answer is being written: the reload waits for the answer to finish
    app.page.fill("#chat-input", "And the breaker?")
    app.page.click("#chat-send")
    with app.page.expect_navigation(timeout=90_000):
        app.page.click("#app-update-reload")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    messages = app.page.locator("#transcript .msg .text").all_inner_texts()
    assert len(messages) == 4 and messages[1] == first_answer and messages[3].strip()
    assert MARKER in app.page.evaluate("fetch('app/ui/style.css').then((r) => r.text())")
    # the old revisions are gone from the shell cache: exactly the new precache list remains
    listed = json.loads((second.out / "precache-manifest.json").read_text())["files"]
    shell = [u for name, urls in app.store()["caches"].items() if name.startswith("fieldllm-shell") for u in urls]
    assert len(shell) == len(listed)
    assert all(f"__rev={e['sha256'][:16]}" in " ".join(shell) for e in listed)
