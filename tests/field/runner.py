"""Runs one shared test vector (tests/field/vectors.json) through the Python side; tests/js/field.test.js does the
same through the JS side. A vector: {"name", "fn", "args", "check", "expect"}; "expect" is the exact output (or
{"error": {"type", "message"}}), "check" a hand-written statement of intent that a projection of the output must
match (see project)."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from app.field import (
    ReadingError,
    RulesError,
    convert,
    detect_asset,
    evaluate,
    fmt_num,
    load_rules,
    load_tasks,
    parse_readings,
    readings_from_form,
    review,
    task_request,
    task_schema,
    unsupported_numbers,
)
from app.field.rules import DEFAULT_RULES, DEFAULT_TASKS, Rules, Tasks


def patched(base: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """base with each {"path": [...], "value": v} set, or {"path": [...], "delete": true} removed."""
    data = copy.deepcopy(base)
    for p in patch:
        *parents, last = p["path"]
        node: Any = data
        for k in parents:
            node = node[k]
        if p.get("delete"):
            del node[last]
        else:
            node[last] = p["value"]
    return data


def _readings(args: dict[str, Any], rules: Rules) -> list[dict[str, Any]]:
    if "readings" in args:
        return list(args["readings"])
    out = readings_from_form(args.get("fields", []), rules)
    return out + parse_readings(args.get("text", ""), rules, args.get("kind"))


def call(fn: str, args: dict[str, Any], rules: Rules, tasks: Tasks) -> Any:
    if fn == "parse_readings":
        return parse_readings(args["text"], rules, args.get("kind"))
    if fn == "readings_from_form":
        return readings_from_form(args["fields"], rules)
    if fn == "convert":
        return convert(args["quantity"], args["value"], args["unit"], args["to"], rules)
    if fn == "detect_asset":
        return detect_asset(args["text"], rules)
    if fn == "evaluate":
        return evaluate(args["kind"], _readings(args, rules), args.get("text", ""), rules, args.get("asset"))
    if fn == "unsupported_numbers":
        return unsupported_numbers(args["answer"], args["input"], args.get("known", []))
    if fn == "review":
        form = readings_from_form(args.get("fields", []), rules)
        return review(args["kind"], args.get("text", ""), form, args["completion"], rules, tasks, args.get("asset"))
    if fn == "task_schema":
        return task_schema(args["kind"], rules, tasks)
    if fn == "task_request":
        form = readings_from_form(args.get("fields", []), rules)
        return task_request(args["kind"], args.get("text", ""), form, rules, tasks, args.get("asset"))
    if fn == "load_rules":
        source = args["raw"].encode() if "raw" in args else patched(rules.data, args.get("patch", []))
        r = load_rules(source)
        return {"version": r.version, "rules_version": r.rules_version, "sha256": r.sha256}
    if fn == "load_tasks":
        t = load_tasks(args["raw"].encode() if "raw" in args else patched(tasks.data, args.get("patch", [])))
        return {kind: t.task(kind).decisive for kind in ("fault", "triage", "screening")}
    if fn == "fmt_num":
        return fmt_num(args["x"])
    raise ValueError(f"unknown vector fn {fn!r}")


def run(vector: dict[str, Any], rules: Rules, tasks: Tasks) -> Any:
    """The output, or {"error": {"type", "message"}} for the two errors the API raises."""
    try:
        return call(vector["fn"], vector["args"], rules, tasks)
    except (RulesError, ReadingError) as e:
        return {"error": {"type": type(e).__name__, "message": str(e)}}


def project(fn: str, result: Any, check: Any) -> Any:
    """The part of a result a vector's hand-written "check" states."""
    if isinstance(result, dict) and "error" in result and set(result) == {"error"}:
        return {"error": result["error"]["message"]}
    if fn in ("parse_readings", "readings_from_form"):
        return [f"{r['quantity']} {fmt_num(r['value'])} {r['unit']}" for r in result]
    if fn in ("evaluate", "review"):
        full = {**result, "rules": [f["rule"] for f in result["fired"]]}
        return {k: full[k] for k in check}
    return result


def same(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (84 == 84.0), but a boolean is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def default_inputs() -> tuple[Rules, Tasks]:
    return load_rules(DEFAULT_RULES.read_bytes()), load_tasks(DEFAULT_TASKS.read_bytes())


def dumps(x: Any) -> str:
    return json.dumps(x, ensure_ascii=False)
