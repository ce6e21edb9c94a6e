"""The task screens (equipment fault, triage, screening), offline on the device engine and through the server fallback:
each produces a card that is either a validated answer (checked here with jsonschema against the task's schema) or,
when the tiny random model's answer is cut by the token limit, a card that says so and shows the rules' safe text;
a red-flag reading escalates with its rule's words whatever the model says; the audit export (a download made in the
page) holds one record per answer with the fields of issue 9 §3; and nothing leaves the device while it works."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from app_page import AppPage
from pwa_env import APP_OPTIONS, PREFER_SERVER
from test_server_fallback import ServedApp

from app.field import evaluate, load_rules, load_tasks, readings_from_form, task_schema
from model_prep.reference import Engine, load
from model_prep.reference.grammar import GrammarSpec

# a short token limit: SwiftShader is slow, and the tiny random model's strings run to their maxLength
# the tasks' own token limits (tasks.json): they cover the longest answer each schema allows, so every card finishes
TASK_OPTIONS = {**APP_OPTIONS, "taskMaxTokens": None}
TASK_INIT = f"globalThis.FIELDLLM_OPTIONS = {json.dumps(TASK_OPTIONS)};"

# what each screen is given: fields by name (value, unit), notes, and whether a red flag is among them (the rules'
# own messages are computed by the Python side over the shipped rules file; the card must show them word for word)
CASES: dict[str, dict[str, Any]] = {
    "triage": {"fields": {"spo2": ("84", None), "heart_rate": ("96", "bpm"), "temp": ("38.2", "°C")},
               "notes": "Short of breath since this morning.", "red_flag": "SpO2 84% ≤ 91%"},
    "fault": {"asset": "P-3", "fields": {"pressure": ("3900", "psi"), "vibration": ("5.2", "mm/s")},
              "notes": "Discharge pressure drifting high since 0200.", "red_flag": "P-3 vibration 5.2 mm/s"},
    "screening": {"reading": ("glucose", "92", "mg/dL"), "fasting": "yes", "notes": "", "red_flag": None},
}


def _form_fields(case: dict[str, Any]) -> list[dict[str, Any]]:
    if "reading" in case:
        quantity, value, unit = case["reading"]
        return [{"quantity": quantity, "value": value, "unit": unit}]
    return [{"quantity": q, "value": v, "unit": u} for q, (v, u) in case["fields"].items()]


def _answer(app: AppPage, kind: str, case: dict[str, Any], timeout_s: float = 240) -> dict[str, Any]:
    """Fills the screen's form, submits it, waits for the card; returns what the card shows."""
    page = app.page
    panel = f"#panel-{kind}"
    page.click(f"#tab-{kind}")
    try:
        page.wait_for_selector(f"{panel} .task-submit:not([disabled])", timeout=30_000)
    except Exception as e:
        raise AssertionError(f"the {kind} screen never became ready: "
                             f"{page.inner_text(f'{panel} .form-error')!r}; console: {app.console[-6:]}") from e
    page.click(f"{panel} .task-clear")
    if "asset" in case:
        page.fill("#fault-asset", case["asset"])
    for name, (value, unit) in case.get("fields", {}).items():
        page.fill(f"{panel} [name='{name}']", value)
        if unit and page.locator(f"select#{kind}-{name}-unit").count():
            page.select_option(f"select#{kind}-{name}-unit", unit)
    if "reading" in case:
        quantity, value, unit = case["reading"]
        page.select_option("#screening-quantity", quantity)
        page.fill("#screening-value", value)
        page.select_option("select#screening-unit", unit)
        page.check(f"input[name=fasting][value={case['fasting']}]")
    page.fill(f"{panel} textarea[name=notes]", case["notes"])
    page.click(f"{panel} .task-submit")
    card = page.locator(f"{panel} .answer-card")
    card.wait_for(state="attached", timeout=timeout_s * 1000)
    assert not page.is_visible(f"{panel} .working"), "the working area stays after the card came"
    shown = {k: card.get_attribute(f"data-{k}") for k in ("status", "escalate", "valid", "cut", "engine")}
    shown["headline"] = card.locator(".headline").inner_text()
    shown["reasons"] = card.locator(".reasons li").all_inner_texts()
    shown["fields"] = card.locator(".answer dd").count()
    shown["safe_text"] = card.locator(".safe-text").all_inner_texts()
    shown["ending"] = card.locator(".ending").all_inner_texts()
    shown["raw_open"] = card.locator("details.raw[open]").count()
    shown["provenance"] = card.locator(".provenance").inner_text()
    shown["text"] = card.inner_text()
    return shown


def _export(app: AppPage, tmp_path: Path) -> list[dict[str, Any]]:
    with app.page.expect_download() as download:
        app.page.click("#audit-export")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.suffix == ".jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


class Shipped:
    """The rules and tasks files a dist/ ships (other work may change the repository's copies mid-run)."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self.rules_bytes = (dist / "app/field/rules.json").read_bytes()
        self.rules = load_rules(self.rules_bytes)
        self.tasks = load_tasks((dist / "app/field/tasks.json").read_bytes())

    def schema(self, kind: str) -> dict[str, Any]:
        return task_schema(kind, self.rules, self.tasks)

    def fires(self, kind: str, case: dict[str, Any]) -> list[str]:
        """The messages of the rules that fire on the case (the notes hold no readings)."""
        readings = readings_from_form(_form_fields(case), self.rules)
        verdict = evaluate(kind, readings, case["notes"], self.rules, case.get("asset"))
        messages = [f["message"] for f in verdict["fired"]]
        if case["red_flag"]:
            assert any(case["red_flag"] in m for m in messages), (case["red_flag"], messages)
        else:
            assert messages == []
        return messages


def _check_card(kind: str, shown: dict[str, Any], record: dict[str, Any], rules_fire: list[str],
                shipped: Shipped) -> str:
    """The card and its audit record agree with the rules and the schema; returns which path it took."""
    schema = shipped.schema(kind)
    output = record["output"]
    verdict = record["verdict"]
    assert record["task"] == kind
    # the answer is the grammar's: JSON of the schema, properties in its order, whether or not it finished
    first = next(iter(schema["properties"]))
    if len(output) > len(first) + 4:
        assert re.match(r'\s*\{\s*"' + re.escape(first) + '"', output), f"not constrained by the schema: {output!r}"
    else:
        assert ('{"' + first + '"').startswith(re.sub(r"\s", "", output)), f"not constrained: {output!r}"
    escalate = bool(rules_fire) or verdict["model_suggests_escalation"]
    assert shown["escalate"] == str(escalate).lower() and verdict["escalate"] is escalate
    assert [f["message"] for f in verdict["fired"]] == rules_fire
    assert shown["reasons"][:len(rules_fire)] == rules_fire  # the rules' own words, first
    if escalate:
        assert shown["headline"] == "ESCALATE" and shown["status"] == "escalate"
    if record["finish_reason"] == "stop":
        jsonschema.validate(json.loads(output), schema)  # Draft 2020-12 is jsonschema's default
        assert verdict["valid"] and shown["valid"] == "true" and shown["cut"] == "false"
        assert record["answer"] == json.loads(output)
        assert shown["fields"] >= len(schema["required"]) and not shown["safe_text"] and not shown["ending"]
        return "valid"
    # cut at the token limit: the card says so and shows the rules' safe text, never the raw output as an answer
    assert record["finish_reason"] == "length", record["finish_reason"]
    assert shown["valid"] == "false" and shown["cut"] == "true" and not verdict["valid"] and verdict["cut"]
    assert shown["ending"] == [f"Cut at the token limit ({record['sampling']['max_tokens']} tokens): "
                               "the answer is incomplete."]
    assert shown["safe_text"] == [verdict["safe_text"]] and shown["fields"] == 0 and shown["raw_open"] == 0
    if escalate:
        assert shown["safe_text"][0].startswith("ESCALATE: ")
    return "cut"


def _check_record(record: dict[str, Any], kind: str, engine: str, model: str, shipped: Shipped,
                  max_tokens: int) -> None:
    """The fields of issue 9 §3; the rules are those the build shipped (build-info.json)."""
    info = json.loads((shipped.dist / "build-info.json").read_text())["rules"]
    assert info["sha256"] == hashlib.sha256(shipped.rules_bytes).hexdigest()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"])
    assert record["engine"] == engine and record["model"] == model
    assert record["rules_version"] == info["rules_version"] == shipped.rules.rules_version
    assert record["rules_sha256"] == info["sha256"]
    assert record["sampling"] == {"temperature": 0, "top_p": None, "seed": None,
                                  "max_tokens": max_tokens, "logprobs": True}
    key = GrammarSpec.json_schema(shipped.schema(kind)).key
    assert record["grammar"] == {"kind": "json_schema", "sha256": key}
    assert record["readings"] and all(r["source"] == "form" for r in record["readings"])
    assert set(record["verdict"]) >= {"status", "escalate", "fired", "valid", "cut", "problems", "confidence",
                                      "unsupported_numbers", "model_suggests_escalation", "safe_text"}
    assert record["error"] is None, f"the engine failed: {record['error']}"
    assert isinstance(record["output"], str) and record["finish_reason"] in ("stop", "length")
    assert record["stopped"] is False
    assert set(record) >= {"usage", "timings", "input", "package_id", "where"}


@pytest.mark.slow
def test_task_screens_offline_on_the_device(new_app: Any, server: Any, dists: Any, tmp_path: Path) -> None:
    index = json.loads((dists["v1"] / "models" / "index.json").read_text())
    model = index["models"][0]
    shipped = Shipped(dists["v1"])
    app = new_app(TASK_INIT)
    requests: list[Any] = []
    app.context.on("request", lambda r: requests.append(r))

    app.open().wait_state("setup")
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    app.wait_controlled()
    origin = server.url("")
    assert [r.url for r in requests if not r.url.startswith((origin, "blob:", "data:"))] == []

    app.go_offline()
    reload_from = len(requests)
    app.page.reload()
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    # the shell, the rules and tasks files, the engine and the model all came from the service worker
    not_from_sw = [r.url for r in requests[reload_from:] if r.url.startswith("http")
                   and not (r.response() and r.response().from_service_worker)]
    assert not_from_sw == [], not_from_sw
    server.reset_log()  # (the browser's own update check of sw.js on navigation: see test_offline.py)
    offline_from = len(requests)

    paths = {}
    shown = {}
    for kind, case in CASES.items():
        shown[kind] = _answer(app, kind, case)
        assert shown[kind]["engine"] == "webgpu"
        assert shown[kind]["provenance"].startswith(f"Computed on this device (WebGPU) · {model['name']} · "
                                                    f"rules {shipped.rules.rules_version}")
    records = _export(app, tmp_path)
    assert len(records) == len(CASES)
    for record, (kind, case) in zip(records, CASES.items(), strict=True):
        _check_record(record, kind, "webgpu", model["name"], shipped, shipped.tasks.task(kind).max_tokens)
        assert record["package_id"] == model["package_id"]
        paths[kind] = _check_card(kind, shown[kind], record, shipped.fires(kind, case), shipped)
    assert paths == {kind: "valid" for kind in CASES}, paths  # each screen gives a validated card

    # nothing went to the network while answering and exporting: what the engine loads on its first structured
    # answer (the grammar library) comes from the service worker's cache, and the export is a blob: URL
    answering = [r for r in requests[offline_from:] if not r.url.startswith(("blob:", "data:"))]
    network = [r.url for r in answering if not (r.response() and r.response().from_service_worker)]
    assert network == [], network
    # the browser's own update check of sw.js (outside Playwright's offline emulation; see test_offline.py) aside,
    # nothing reached the server
    assert [p for p in server.log if p != "/sw.js"] == [], server.log
    assert app.errors == []


@pytest.fixture(scope="module")
def engine(packages: dict[str, Path]) -> Engine:
    return load(packages["v1"], context=1024)


@pytest.mark.slow
@pytest.mark.parametrize("csp", [
    "served",  # fieldllm serve's own policy, with the build's import-map hash (app/server/headers.py)
])
def test_triage_screen_through_the_server(csp: str, browser_without_webgpu: Any, dists: Any, engine: Engine,
                                          tmp_path: Path) -> None:
    shipped = Shipped(dists["v1"])
    with ServedApp(dists["v1"], engine) as served:
        context = browser_without_webgpu.new_context(bypass_csp=csp == "bypassed")
        # the reference engine is fast: the tasks' own token limits, so that an answer can finish
        context.add_init_script(f"globalThis.FIELDLLM_OPTIONS = {json.dumps(APP_OPTIONS)};")
        context.add_init_script(PREFER_SERVER)  # the CPU engine could answer: the user chose the server
        try:
            app = AppPage(context, served)  # type: ignore[arg-type]
            posts: list[Any] = []
            context.on("request", lambda r: posts.append(r) if r.method == "POST" else None)
            assert app.open().wait_problem_or("ready-server") == "ready-server", app.problem_text()
            shown = _answer(app, "triage", CASES["triage"], timeout_s=120)
            assert shown["engine"] == "server"
            assert shown["provenance"].startswith(f"Computed on the server {served.url('')} · {engine.name} · ")
            [post] = posts
            body = post.post_data_json
            assert body["response_format"]["json_schema"]["schema"] == shipped.schema("triage")
            assert body["stream"] is True and body["logprobs"] is True
            [record] = _export(app, tmp_path)
            _check_record(record, "triage", "server", engine.name, shipped, shipped.tasks.task("triage").max_tokens)
            assert record["package_id"] is None and record["model"] == engine.name
            fires = shipped.fires("triage", CASES["triage"])
            print("path taken:", _check_card("triage", shown, record, fires, shipped))
            assert app.errors == []
        finally:
            context.close()
