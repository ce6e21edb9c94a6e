"""A download cut off half-way resumes on the next visit: verified files are never fetched again."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.mark.slow
def test_network_cut_after_half_the_shards_resumes_with_only_the_missing(new_app: Any, server: Any,
                                                                         dists: Any) -> None:
    model = json.loads((dists["v1"] / "models" / "index.json").read_text())["models"][0]
    folder = f"/models/{model['dir']}/"
    manifest = json.loads((dists["v1"] / "models" / model["dir"] / "manifest.json").read_text())
    shards = sorted(folder + f["path"] for f in manifest["files"] if f["path"].startswith("weights-"))
    assert len(shards) >= 6, "the test needs several shards (--shard-size 64KiB)"
    half = len(shards) // 2
    # the first `half` shard responses go through; after that the network drops every shard mid-body
    server.fault(folder + "weights-*", "cut", after=half)

    app = new_app()
    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "download-interrupted", app.problem_text()
    assert "continues from where it stopped" in app.problem_text()
    completed = {p for p in server.completed if p in shards}
    assert len(completed) == half
    store = app.store()
    assert store["state"] is None, "nothing may be activated from a partial download"
    stored = {u.removeprefix(server.origin) for urls in store["caches"].values() for u in urls}
    assert completed <= stored and not (set(shards) - completed) & stored
    app.page.close()  # the tab is closed

    server.clear_faults()
    server.reset_log()
    again = app.new_tab().open()  # the next visit, online: it carries on by itself
    assert again.wait_problem_or("ready") == "ready", again.problem_text()
    fetched = [p for p in server.log if p.startswith(folder)]
    missing = sorted(set(shards) - completed)
    assert sorted(p for p in fetched if p in shards) == missing  # each missing shard once, no verified one
    assert set(fetched) <= set(missing) | {folder + "tokenizer.json", folder + "report.json"}
    for path in shards:
        sha = next(f["sha256"] for f in manifest["files"] if folder + f["path"] == path)
        assert again.cached_sha256(server.url(path)) == sha
