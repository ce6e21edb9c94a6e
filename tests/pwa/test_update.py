"""A new model version published while one is active: the active one keeps answering until the new one is fully
verified, then one switch; a new version that does not load rolls back to the one that did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def _entry(dist: Path) -> dict[str, Any]:
    return dict(json.loads((dist / "models" / "index.json").read_text())["models"][0])


def _install(app: Any) -> None:
    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    app.wait_controlled()


@pytest.mark.slow
def test_v1_answers_until_v2_is_verified_then_switches(new_app: Any, server: Any, dists: Any) -> None:
    v1, v2 = _entry(dists["v1"]), _entry(dists["v2"])
    app = new_app()
    _install(app)
    assert app.text("#ready-version") == v1["package_id"][:12]

    server.publish(dists["v2"])
    hold = server.fault(f"/models/{v2['dir']}/weights-*", "hold")  # v2's shards stay in flight until released
    app.page.reload()
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    assert app.page.is_visible("#model-update")
    assert v2["package_id"][:12] in app.text("#model-update-text")
    app.page.click("#model-update-download")
    server.wait_for(lambda: len(server.requests(f"/models/{v2['dir']}/weights-*")) >= 1)

    # v2 is half-way: v1 is still the active version and still answers
    assert app.ask("The pump bearing runs hot. What should I check?").strip()
    store = app.store()
    assert store["state"]["active"]["package_id"] == v1["package_id"]
    v2_cache = store["caches"][f"fieldllm-model:{v2['package_id']}"]
    assert not any("/weights-" in u for u in v2_cache)  # nothing of v2's weights counts yet
    assert app.text("#ready-version") == v1["package_id"][:12]

    hold.release.set()  # the rest of v2 arrives: verified, then the switch and a load of v2
    app.page.wait_for_selector(f'#ready-version:text-is("{v2["package_id"][:12]}")', timeout=90_000)
    assert app.wait_problem_or("ready") == "ready"
    store = app.store()
    assert store["state"]["active"]["package_id"] == v2["package_id"]
    assert store["state"]["confirmed"] is True and store["state"]["previous"] is None
    model_caches = sorted(n for n in store["caches"] if n.startswith("fieldllm-model:"))
    assert model_caches == [f"fieldllm-model:{v2['package_id']}"]  # v1 deleted once v2 had loaded
    assert app.page.is_hidden("#model-update")
    assert len(app.page.locator(".msg.assistant").all()) == 1  # the conversation is still there
    assert app.ask("And the strainer?").strip()  # answered by v2


@pytest.mark.slow
def test_v2_that_fails_to_load_rolls_back_to_v1(new_app: Any, server: Any, dists: Any) -> None:
    v1, broken = _entry(dists["v1"]), _entry(dists["v2_broken"])
    app = new_app()
    _install(app)

    server.publish(dists["v2_broken"])  # every file verifies, but the manifest lacks a tensor the engine needs
    app.page.reload()
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    app.page.click("#model-update-download")
    app.page.wait_for_selector("#notice:not([hidden])", timeout=90_000)
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    notice = app.text("#notice")
    assert broken["package_id"][:12] in notice and "went back to version " + v1["package_id"][:12] in notice
    assert app.text("#ready-version") == v1["package_id"][:12]
    store = app.store()
    assert store["state"]["active"]["package_id"] == v1["package_id"]
    assert store["state"]["rejected"] == [broken["package_id"]]
    assert f"fieldllm-model:{broken['package_id']}" not in store["caches"]
    assert app.ask("Patient: fever 39.4 C, heart rate 128. How urgent?").strip()

    app.page.reload()  # the failed version is not offered again
    assert app.wait_problem_or("ready") == "ready"
    assert app.page.is_hidden("#model-update")
    assert app.text("#ready-version") == v1["package_id"][:12]
