"""Random JSON Schemas and tool sets from a seed, for the structured-output property tests (Python and JS).

Every schema is bounded (strings, arrays and nesting have limits) so that a completion always fits in MAX_TOKENS,
and uses only the keywords reference/grammar.py accepts. ``python tests/random_schemas.py SEED N`` prints them as
JSON, so that the Node tests draw the very same sets.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any

MAX_TOKENS = 160  # enough for every schema below, with the default model's tokens


def _leaf(rng: random.Random) -> dict[str, Any]:
    # no "number": its digits are unbounded, and a small model may write zeros until max_tokens (a cut answer is
    # reported as finish "length", never as valid; here every case must finish)
    kind = rng.choice(["string", "enum", "integer", "boolean", "const", "array"])
    if kind == "string":
        return {"type": "string", "minLength": rng.randint(0, 2), "maxLength": rng.randint(3, 16)}
    if kind == "enum":
        return {"enum": rng.sample(["low", "medium", "high", "critical", "ok", "pump", "valve", "n/a"],
                                   rng.randint(2, 4))}
    if kind == "integer":
        lo = rng.randint(-50, 50)
        return {"type": "integer", "minimum": lo, "maximum": lo + rng.randint(0, 500)}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "const":
        return {"const": rng.choice(["v1", 7, True])}
    return {"type": "array", "items": {"type": "string", "maxLength": rng.randint(2, 10)},
            "minItems": rng.randint(0, 1), "maxItems": rng.randint(1, 3)}


def random_schema(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    names = rng.sample(["cause", "action", "priority", "asset", "value", "note", "count", "ok", "unit", "level"],
                       rng.randint(1, 4))
    props = {n: (random_schema(rng, depth + 1) if depth == 0 and rng.random() < 0.2 else _leaf(rng)) for n in names}
    required = [n for n in names if rng.random() < 0.7]
    schema: dict[str, Any] = {"type": "object", "properties": props, "required": required,
                              "additionalProperties": False}
    if depth == 0 and rng.random() < 0.15:
        return {"anyOf": [schema, {"type": "object", "properties": {"error": {"type": "string", "maxLength": 12}},
                                   "required": ["error"], "additionalProperties": False}]}
    return schema


def random_tools(rng: random.Random) -> tuple[list[dict[str, Any]], Any]:
    """(tools, tool_choice): 1-3 functions, and "required" or one of them by name."""
    names = rng.sample(["read_gauge", "log_reading", "open_ticket", "lookup_asset", "call_medic"], rng.randint(1, 3))
    tools = [{"type": "function", "function": {"name": n, "description": f"{n.replace('_', ' ')}",
                                               "parameters": random_schema(rng, 1)}} for n in names]
    choice: Any = "required" if rng.random() < 0.5 else {"type": "function", "function": {"name": rng.choice(names)}}
    return tools, choice


def cases(seed: int, n: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        if i % 5 == 4:
            tools, choice = random_tools(rng)
            out.append({"tools": tools, "tool_choice": choice})
        else:
            out.append({"schema": random_schema(rng)})
    return out


if __name__ == "__main__":
    json.dump(cases(int(sys.argv[1]), int(sys.argv[2])), sys.stdout)
