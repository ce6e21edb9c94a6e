"""A file served damaged is caught by its sha256: fetched again, and never stored or activated with bad bytes."""

from __future__ import annotations

import json
from typing import Any

import pytest


def _model(dist: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    model = json.loads((dist / "models" / "index.json").read_text())["models"][0]
    manifest = json.loads((dist / "models" / model["dir"] / "manifest.json").read_text())
    return model, manifest, f"/models/{model['dir']}/"


@pytest.mark.slow
def test_corrupted_shard_is_fetched_again(new_app: Any, server: Any, dists: Any) -> None:
    model, manifest, folder = _model(dists["v1"])
    shard = manifest["files"][1]
    server.fault(folder + shard["path"], "corrupt", times=1)  # damaged once, then the right bytes

    app = new_app()
    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    assert server.requests(folder + shard["path"]) == [folder + shard["path"]] * 2
    assert app.cached_sha256(server.url(folder + shard["path"])) == shard["sha256"]
    assert app.store()["state"]["active"]["package_id"] == model["package_id"]


@pytest.mark.slow
def test_shard_that_stays_corrupt_is_never_activated(new_app: Any, server: Any, dists: Any) -> None:
    _, manifest, folder = _model(dists["v1"])
    shard = manifest["files"][0]
    server.fault(folder + shard["path"], "corrupt")  # every time

    app = new_app()
    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "integrity-failed"
    assert shard["path"] in app.problem_text() and "was not activated" in app.problem_text()
    assert len(server.requests(folder + shard["path"])) == 5  # the default number of attempts
    store = app.store()
    assert store["state"] is None
    assert app.cached_sha256(server.url(folder + shard["path"])) is None  # the bad bytes were never stored

    # the server is fixed: "Try again" fetches only what is missing, and the right bytes activate
    server.clear_faults()
    server.reset_log()
    app.page.click("#problem-action")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    assert folder + shard["path"] in server.log
    assert app.cached_sha256(server.url(folder + shard["path"])) == shard["sha256"]
