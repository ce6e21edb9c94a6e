"""The shipped rules and tasks files, and loading: what the files must hold, what a reader rejects, and that the
rules (data) and nothing else decide."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import xgrammar as xgr
from runner import patched

from app.field import (
    DEFAULT_RULES,
    DEFAULT_TASKS,
    KINDS,
    ReadingError,
    RulesError,
    evaluate,
    load_rules,
    load_tasks,
    parse_readings,
    readings_from_form,
    review,
    task_request,
    task_schema,
)

SCHEMA_KEYWORDS = {"type", "enum", "const", "required", "properties", "items", "minItems", "maxItems", "minLength",
                   "maxLength", "additionalProperties"}
RAW_RULES = json.loads(DEFAULT_RULES.read_text())


@pytest.fixture(scope="module")
def rules() -> Any:
    return load_rules()


def _subschemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    out = [schema]
    for sub in schema.get("properties", {}).values():
        out += _subschemas(sub)
    if isinstance(schema.get("items"), dict):
        out += _subschemas(schema["items"])
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_task_schema_compiles_with_xgrammar_strict(kind: str, rules: Any) -> None:
    schema = task_schema(kind, rules)
    xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, strict_mode=True)


@pytest.mark.parametrize("kind", KINDS)
def test_task_schema_is_closed_and_bounded(kind: str, rules: Any) -> None:
    schema = task_schema(kind, rules)
    for sub in _subschemas(schema):
        assert set(sub) <= SCHEMA_KEYWORDS, f"{kind}: keywords xgrammar may not honour: {set(sub) - SCHEMA_KEYWORDS}"
        if sub["type"] == "object":
            assert sub["additionalProperties"] is False
            assert sorted(sub["required"]) == sorted(sub["properties"])
        if sub["type"] == "string":
            assert "enum" in sub or ("maxLength" in sub and sub.get("minLength", 0) >= 1), kind
        if sub["type"] == "array":
            assert 1 <= sub["minItems"] <= sub["maxItems"], kind


def test_screening_has_no_diagnosis_field_and_tasks_ask_for_no_invented_numbers(rules: Any) -> None:
    tasks = load_tasks()
    props = task_schema("screening", rules)["properties"]
    assert not any("diagnos" in name for name in props)
    for kind in KINDS:
        assert "never invent" in tasks.task(kind).system.lower()


def test_escalating_values_are_values_of_the_decisive_field(rules: Any) -> None:
    tasks = load_tasks()
    for kind in KINDS:
        task = tasks.task(kind)
        decisive = task_schema(kind, rules)["properties"][task.decisive]
        assert task.escalate_values and set(task.escalate_values) <= set(decisive["enum"]), kind


def test_allow_lists_are_injected_and_name_no_diagnosis(rules: Any) -> None:
    assert task_schema("triage", rules)["properties"]["interventions"]["items"]["enum"] == \
        RAW_RULES["allow_lists"]["triage_interventions"]
    assert task_schema("screening", rules)["properties"]["next_step"]["enum"] == \
        RAW_RULES["allow_lists"]["screening_next_steps"]
    # a valid next step can never fail the diagnosis check
    for step in rules.allow_lists["screening_next_steps"]:
        assert not any(p.search(step) for _, p in rules.compiled.diagnosis), step


def test_every_limit_names_its_source_and_the_file_is_versioned() -> None:
    assert RAW_RULES["format"] == "fieldllm-rules" and RAW_RULES["version"] == 1 and RAW_RULES["rules_version"]
    for lim in RAW_RULES["limits"]:
        assert lim.get("source"), lim["id"]
    assert 0 < RAW_RULES["confidence_threshold"] < 1


def test_sha256_is_of_the_bytes_read() -> None:
    data = DEFAULT_RULES.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    assert load_rules(DEFAULT_RULES).sha256 == digest
    assert load_rules(str(DEFAULT_RULES)).sha256 == digest
    assert load_rules(data).sha256 == digest
    assert load_rules(json.loads(data)).sha256 is None
    assert load_rules(data + b"\n").sha256 != digest


@pytest.mark.parametrize(("patch", "message"), [
    ([{"path": ["format"], "value": "fieldllm-models"}],
     'rules: unsupported format "fieldllm-models" version 1: this reader supports format "fieldllm-rules" version 1'),
    ([{"path": ["version"], "value": 2}], 'version 2: this reader supports format "fieldllm-rules" version 1'),
    ([{"path": ["version"], "value": True}], 'version true: this reader supports'),
    ([{"path": ["units", "%", "aliases"], "value": "%"}], "rules: units.%.aliases must be a non-empty list"),
    ([{"path": ["quantities", "glucose", "units", "mg/L"], "value": 1}],
     'rules: quantities.glucose.units: unknown unit "mg/L"'),
    ([{"path": ["limits", 3, "limits"], "value": {"mmHg": 8}}],
     'rules: limits[3] (rr_low): unit "mmHg" is not one resp_rate takes (breaths/min, /min)'),
    ([{"path": ["unit_defaults", "clinical", "psi"], "value": "glucose"}],
     'rules: unit_defaults.clinical: quantity "glucose" does not take unit "psi"'),
    ([{"path": ["texts", "cut"], "value": "cut at {when}"}], 'rules: texts.cut: unknown placeholder "{when}"'),
])
def test_bad_rules_are_rejected_with_one_line(patch: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(RulesError) as err:
        load_rules(patched(RAW_RULES, patch))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(RulesError, match=r"^rules: not valid JSON$"):
        load_rules(tmp_path / "bad.json")
    (tmp_path / "nan.json").write_text('{"format": NaN}')
    with pytest.raises(RulesError, match=r"^rules: not valid JSON$"):
        load_rules(tmp_path / "nan.json")
    with pytest.raises(RulesError, match=r"^tasks: not a JSON object$"):
        load_tasks(b"[]")


def test_unknown_units_and_quantities_from_a_form(rules: Any) -> None:
    with pytest.raises(ReadingError, match='unknown unit "mg/L" for glucose: use one of mg/dL, mmol/L'):
        readings_from_form([{"quantity": "glucose", "value": 5, "unit": "mg/L"}], rules)
    with pytest.raises(ReadingError, match='unknown quantity "sats"'):
        readings_from_form([{"quantity": "sats", "value": 84, "unit": "%"}], rules)


def test_the_rules_file_decides(rules: Any) -> None:
    """The same input under a rules file with another limit: the verdict follows the file, not the code."""
    text = "SpO2 84%"
    assert evaluate("triage", parse_readings(text, rules, "triage"), text, rules)["status"] == "escalate"
    looser = load_rules(patched(RAW_RULES, [{"path": ["limits", 0, "limits"], "value": {"%": 80}}]))
    assert evaluate("triage", parse_readings(text, looser, "triage"), text, looser)["status"] == "in_range"
    no_words = load_rules(patched(RAW_RULES, [{"path": ["quantities", "spo2", "words"], "value": ["oximetry"]}]))
    assert parse_readings(text, no_words, "triage") == []


def test_outputs_are_json_and_deterministic(rules: Any) -> None:
    text = "mud pump P-3 discharge 435 PSI, smoke from the motor, SpO2 84% on the operator"
    completion = {"content": '{"asset": "P-3"}', "finish_reason": "stop", "decisive_probability": 0.2}
    cards = [review("fault", text, [], completion, rules) for _ in range(2)]
    assert json.dumps(cards[0], sort_keys=True) == json.dumps(cards[1], sort_keys=True)
    assert cards[0]["escalate"] and cards[0]["answer"] is None and cards[0]["safe_text"].startswith("ESCALATE")
    body = task_request("fault", text, [], rules)
    assert json.loads(json.dumps(body)) == body
    assert body["response_format"]["json_schema"]["strict"] is True and body["temperature"] == 0
    assert body["max_tokens"] == load_tasks(DEFAULT_TASKS).task("fault").max_tokens


def _longest(schema: dict, rules_schema: bool = True) -> int:
    """Characters of the longest compact answer a bounded schema allows (", " and ": " separators, ASCII strings
    without escapes): what max_tokens must cover, at worst one token a character, for an answer never to be cut."""
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"])
    if schema.get("type") == "string":
        return schema["maxLength"] + 2
    if schema.get("type") == "array":
        n = schema["maxItems"]
        return 2 + n * _longest(schema["items"]) + 2 * max(0, n - 1)
    if schema.get("type") == "object":
        props = schema["properties"]
        return 2 + sum(len(json.dumps(k)) + 2 + _longest(v) for k, v in props.items()) + 2 * (len(props) - 1)
    raise AssertionError(f"unbounded schema part {schema}")


def test_max_tokens_covers_the_longest_answer() -> None:
    """A task's answer is never cut by its own max_tokens: the bound covers the longest answer its schema allows."""
    from app.field import default_tasks, load_rules, task_schema

    rules, tasks = load_rules(), default_tasks()
    for kind in ("fault", "triage", "screening"):
        longest = _longest(task_schema(kind, rules, tasks))
        assert tasks.task(kind).max_tokens >= longest, (kind, longest)
        assert tasks.task(kind).max_tokens <= 2 * longest, (kind, longest)  # and stays a bound, not a guess
