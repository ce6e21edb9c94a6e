"""The real default model (SmolLM2-135M-Instruct, 98 MB) installed, then answering offline on the device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.build import build


@pytest.mark.slow
def test_smollm2_installs_and_answers_offline(new_app: Any, server: Any, smollm2_package: Path, engine_dir: Path,
                                             tmp_path: Path) -> None:
    dist = build([smollm2_package], tmp_path / "dist", engine_dir=engine_dir).out
    server.publish(dist)
    app = new_app()
    app.open().wait_state("setup")
    assert "98 MB" in app.text("#setup-size")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready", timeout=300_000) == "ready", app.problem_text()
    app.wait_controlled()

    app.go_offline()
    app.page.reload()
    assert app.wait_problem_or("ready", timeout=300_000) == "ready", app.problem_text()
    server.reset_log()
    answer = app.ask("What is the capital of France?", timeout=600)
    assert "Paris" in answer
    assert server.log == []
