"""First visit online, then the same app with the network gone: it reloads from the service worker and answers
on the device, and nothing leaves the page while it answers."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.mark.slow
def test_first_visit_then_offline_answer(new_app: Any, server: Any, dists: Any) -> None:
    index = json.loads((dists["v1"] / "models" / "index.json").read_text())
    model = index["models"][0]
    app = new_app()
    seen: list[Any] = []  # every request the page and its workers make, answered from anywhere
    app.context.on("request", lambda r: seen.append(r))

    app.open().wait_state("setup")
    assert model["name"] in app.text("#setup-name")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    # the progress block went to completion: every file verified, all bytes counted
    assert app.page.get_attribute("#setup-progress", "data-files") == f"{model['files']}/{model['files']}"
    assert app.text("#setup-progress .download-eta") == "done"
    assert app.text("#ready-version") == model["package_id"][:12]
    assert "on this device" in app.text("#ready-storage")
    app.wait_controlled()
    # each model file came over the network once: the engine loaded it from the model store, not again
    folder = f"/models/{model['dir']}/"
    model_requests = [p for p in server.log if p.startswith(folder)]
    assert sorted(model_requests) == sorted({*model_requests}) and len(model_requests) == model["files"]

    app.go_offline()
    server.reset_log()
    offline_from = len(seen)
    app.page.reload()
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    assert "Offline" in app.text("#net-status")
    reload_requests = seen[offline_from:]
    assert reload_requests, "the reload made no requests at all?"
    # the shell, the engine and the model all came from the service worker (precache and model store)
    not_from_sw = [r.url for r in reload_requests if not (r.response() and r.response().from_service_worker)]
    assert not_from_sw == [], not_from_sw

    # the browser itself checks sw.js for an app update on navigation, and the service worker passes the app's check
    # for a newer model version (models/index.json) to the network; Playwright's offline emulation covers neither (on
    # a device without network both just fail): nothing else, no model file and no question, may reach the server
    assert [p for p in server.log if p not in ("/sw.js", "/models/index.json")] == [], server.log
    server.reset_log()

    generation_from = len(seen)
    answer = app.ask("Generator 2 tripped on overcurrent. What should I check?")
    assert answer.strip(), "an empty answer"
    assert seen[generation_from:] == [], [r.url for r in seen[generation_from:]]  # no request during generation
    assert server.log == [], server.log  # and nothing reached the server
    assert app.errors == []
