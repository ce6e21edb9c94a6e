"""The three tasks: the request that asks the model, and the review that turns its completion into a card.

A card shows the model's answer only when it parsed, validated against the task's schema (jsonschema here,
@cfworker/json-schema in app/field/answers.js: neither compiles code, so the page's CSP allows it), was not cut
and, for screening, names no diagnosis. Otherwise it carries a templated safe text instead. The rules decide
escalation; the model can add escalation (its decisive field), never remove it.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import jsonschema

from .evaluate import evaluate
from .numbers import fmt_num, from_canonical, numbers_in, unsupported_numbers
from .readings import Reading, parse_readings
from .rules import Rules, RulesError, Tasks, default_tasks, show

MAX_PROBLEMS = 10
MAX_DEPTH = 64
_BLANK = re.compile("[ \\t\\n\\r]*")
_SAFE_NAME = re.compile("[A-Za-z0-9_ \\-]")


def _inject(node: Any, rules: Rules) -> Any:
    if isinstance(node, list):
        return [_inject(x, rules) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k == "enum_from":
            if v not in rules.allow_lists:
                raise RulesError(f'tasks: unknown allow-list "{show(v)}" (the rules have '
                                 f'{", ".join(rules.allow_lists)})')
            out["enum"] = list(rules.allow_lists[v])
        else:
            out[k] = _inject(v, rules)
    return out


def task_schema(kind: str, rules: Rules, tasks: Tasks | None = None) -> dict[str, Any]:
    """The task's answer schema, with the rules' allow-lists in place of its "enum_from" references."""
    task = (tasks or default_tasks()).task(kind)
    return _inject(copy.deepcopy(task.schema), rules)


def _strip(text: str) -> str:
    return text.strip(" \t\n\r")


def task_request(kind: str, text: str, form_readings: list[Reading], rules: Rules, tasks: Tasks | None = None,
                 asset: str | None = None) -> dict[str, Any]:
    """An OpenAI chat request body for the task: greedy, bounded, constrained to the task's schema. The form's
    readings are written into the user message one a line ("- SpO2: 84 %")."""
    task = (tasks or default_tasks()).task(kind)
    lines = []
    if asset:
        lines.append(f"Asset: {_strip(asset)}")
    if form_readings:
        lines.append("Readings:")
        for r in form_readings:
            q = rules.quantity(r["quantity"])
            unit = rules.units[r["unit"]].display
            lines.append(f"- {q.label}: {fmt_num(r['value'])}" + (f" {unit}" if unit else ""))
    notes = _strip(text)
    if notes:
        lines.append(f"Notes: {notes}")
    if not lines:
        lines.append("Notes: (none)")
    return {
        "messages": [{"role": "system", "content": task.system}, {"role": "user", "content": "\n".join(lines)}],
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": kind, "schema": task_schema(kind, rules, tasks), "strict": True}},
        "temperature": 0,
        "max_tokens": task.max_tokens,
        "metadata": {"fieldllm_task": kind, "fieldllm_rules_version": rules.rules_version},
    }


# ---- validation ----

def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def _type_ok(t: str, v: Any) -> bool:
    if t == "integer":
        return _json_type(v) == "number" and float(v).is_integer()
    return _json_type(v) == t


def _same(a: Any, b: Any) -> bool:
    ta = _json_type(a)
    return ta == _json_type(b) and ta in ("string", "number", "boolean", "null") and a == b


def safe_name(name: str) -> str:
    """A property name from a model's answer as a message shows it: letters, digits, '_', ' ', '-'; '?' for
    anything else; at most 40 characters."""
    chars = [c if _SAFE_NAME.fullmatch(c) else "?" for c in name]
    return "".join(chars[:40]) + ("…" if len(chars) > 40 else "")


def _walk(schema: dict[str, Any], v: Any, path: str, out: list[str]) -> None:
    t = schema.get("type")
    if isinstance(t, str) and not _type_ok(t, v):
        out.append(f"{path}: expected {t}, got {_json_type(v)}")
        return
    if "const" in schema and not _same(v, schema["const"]):
        out.append(f"{path}: not the allowed value")
    if "enum" in schema and not any(_same(v, e) for e in schema["enum"]):
        out.append(f"{path}: not one of the allowed values")
    if isinstance(v, str):
        n = len(v)
        if "minLength" in schema and n < schema["minLength"]:
            out.append(f"{path}: {n} characters, fewer than {show(schema['minLength'])}")
        if "maxLength" in schema and n > schema["maxLength"]:
            out.append(f"{path}: {n} characters, more than {show(schema['maxLength'])}")
    elif isinstance(v, list):
        if "minItems" in schema and len(v) < schema["minItems"]:
            out.append(f"{path}: {len(v)} items, fewer than {show(schema['minItems'])}")
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            out.append(f"{path}: {len(v)} items, more than {show(schema['maxItems'])}")
        if isinstance(schema.get("items"), dict):
            for i, x in enumerate(v):
                _walk(schema["items"], x, f"{path}[{i}]", out)
    elif isinstance(v, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in v:
                out.append(f'{path}: missing "{name}"')
        if schema.get("additionalProperties") is False:
            for name in sorted({safe_name(k) for k in v if k not in props}):
                out.append(f'{path}: unexpected "{name}"')
        for name, sub in props.items():
            if name in v and isinstance(sub, dict):
                _walk(sub, v[name], f"{path}.{name}", out)


def schema_problems(schema: dict[str, Any], value: Any) -> list[str]:
    """Why value does not match schema, one line each (at most MAX_PROBLEMS), [] if it does. The lines come from
    a walk over the keywords the task schemas use; the verdict also needs the JSON Schema validator's, so a
    keyword the walk does not know fails closed."""
    out: list[str] = []
    _walk(schema, value, "answer", out)
    if not out and not jsonschema.Draft202012Validator(schema).is_valid(value):
        out.append("answer: does not match the schema")
    return out[:MAX_PROBLEMS]


def _depth(text: str) -> int:
    """The deepest nesting of [ and { outside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_answer(content: str) -> tuple[Any, str | None]:
    """(value, None) or (None, why it is not JSON)."""
    if _BLANK.fullmatch(content):
        return None, "the answer is empty"
    if _depth(content) > MAX_DEPTH:
        return None, "the answer is nested too deeply"
    try:
        return json.loads(content, parse_constant=_reject_constant), None
    except (ValueError, RecursionError):
        return None, "the answer is not valid JSON"


def diagnosis_problems(schema: dict[str, Any], answer: dict[str, Any], rules: Rules) -> list[str]:
    """Diagnosis words (rules' diagnosis_phrases, not negated) in a screening answer's text."""
    texts: list[str] = []
    for name in schema["properties"]:
        v = answer.get(name)
        texts.extend([v] if isinstance(v, str) else [x for x in v if isinstance(x, str)] if isinstance(v, list) else [])
    text = "\n".join(texts)
    c = rules.compiled
    out = []
    for phrase, pattern in c.diagnosis:
        for m in pattern.finditer(text):
            if not c.negated(text, m.start(), m.end()):
                out.append(f'screening answers must not diagnose: "{phrase}"')
                break
    return out


def _known_numbers(readings: list[Reading], rules: Rules) -> list[float]:
    """Values the input states in other forms: every reading in each unit of its quantity, and the allow-lists'
    numbers (the schema offers them)."""
    out: list[float] = []
    for r in readings:
        q = rules.quantities[r["quantity"]]
        out += [float(r["value"]), float(r["canonical_value"])]
        out += [from_canonical(q, r["canonical_value"], u) for u in q.units]
    for values in rules.allow_lists.values():
        for v in values:
            out += [n for _, n in numbers_in(v)]
    return out


def review(kind: str, input_text: str, readings: list[Reading], completion: dict[str, Any], rules: Rules,
           tasks: Tasks | None = None, asset: str | None = None) -> dict[str, Any]:
    """The card for one completion of a task. `readings` are the form's (readings_from_form); the text's are
    parsed here. completion: {"content", "finish_reason", "decisive_probability"}."""
    task = (tasks or default_tasks()).task(kind)
    all_readings = [*readings, *parse_readings(input_text, rules, kind)]
    verdict = evaluate(kind, all_readings, input_text, rules, asset)
    content = completion.get("content")
    content = content if isinstance(content, str) else ""
    finish = completion.get("finish_reason")
    cut = finish != "stop"
    problems: list[str] = []
    if cut:
        problems.append(f'the answer was cut off (finish_reason "{safe_name(show(finish))}")')
    value, why = parse_answer(content)
    answer: dict[str, Any] | None = None
    if why is not None:
        problems.append(why)
    else:
        schema = task_schema(kind, rules, tasks)
        found = schema_problems(schema, value)
        if not found and kind == "screening":
            found = diagnosis_problems(schema, value, rules)
        problems += found
        if not problems:
            answer = value
    valid = answer is not None
    p = completion.get("decisive_probability")
    confidence = None
    if valid and not isinstance(p, bool) and isinstance(p, int | float):
        confidence = "high" if p >= rules.confidence_threshold else "low"
    suggests = valid and answer is not None and answer.get(task.decisive) in task.escalate_values
    escalate = verdict["status"] == "escalate" or suggests
    status = "escalate" if escalate else "implausible" if verdict["status"] == "implausible" else \
        "invalid_answer" if not valid else verdict["status"]
    reasons = "; ".join(f["message"] for f in verdict["fired"])
    safe_text = None
    if not valid:
        name = ("escalate_cut" if cut else "escalate_invalid") if escalate else "cut" if cut else "invalid"
        safe_text = rules.texts[name].replace("{reasons}", reasons)
    notices = []
    if verdict["implausible"]:
        notices.append(rules.texts["remeasure"].replace("{reasons}",
                                                        "; ".join(i["message"] for i in verdict["implausible"])))
    if confidence == "low":
        notices.append(rules.texts["low_confidence"])
    return {
        "kind": kind,
        "status": status,
        "escalate": escalate,
        "fired": verdict["fired"],
        "implausible": verdict["implausible"],
        "readings": verdict["readings"],
        "asset": verdict["asset"],
        "answer": answer,
        "valid": valid,
        "problems": problems,
        "cut": cut,
        "safe_text": safe_text,
        "unsupported_numbers": unsupported_numbers(content, input_text, _known_numbers(verdict["readings"], rules)),
        "confidence": confidence,
        "model_suggests_escalation": suggests,
        "notices": notices,
        "rules_version": rules.rules_version,
    }
