"""`fieldllm serve --audit FILE`: every structured answer leaves one JSON line; a task request from the app's screens
also leaves the readings and the rules' verdict. Plain chat leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from app.field import load_rules, task_request

MODEL = "SmolLM2-135M-Instruct.Q4_1"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_triage_answer_is_audited_with_its_verdict(real_server: str, audit_log: Path) -> None:
    before = len(_records(audit_log))
    body = task_request("triage", "Fell from scaffolding, SpO2 84%, HR 128, confused.", [], load_rules())
    r = httpx.post(f"{real_server}/v1/chat/completions", json={"model": MODEL, "seed": 7, **body}, timeout=120)
    assert r.status_code == 200, r.text
    answer = r.json()["choices"][0]
    records = _records(audit_log)
    assert len(records) == before + 1
    rec = records[-1]
    assert rec["engine"] == "server-native" and rec["model"] == MODEL and rec["package_id"]
    assert rec["task"] == "triage" and rec["rules_version"] == load_rules().rules_version
    assert rec["output"] == answer["message"]["content"] and rec["finish_reason"] == answer["finish_reason"]
    assert rec["sampling"]["seed"] == 7 and rec["sampling"]["temperature"] == 0
    assert len(rec["grammar"]["sha256"]) == 64 and rec["timings"]["predicted_n"] == rec["usage"]["completion_tokens"]
    spo2 = [x for x in rec["readings"] if x["quantity"] == "spo2"]
    assert spo2 and spo2[0]["value"] == 84
    assert rec["verdict"]["escalate"] is True
    assert any("84" in f["message"] for f in rec["verdict"]["fired"])


def test_plain_chat_is_not_audited(real_server: str, audit_log: Path) -> None:
    before = len(_records(audit_log))
    r = httpx.post(f"{real_server}/v1/chat/completions", timeout=120,
                   json={"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 200
    assert len(_records(audit_log)) == before
