"""How sure the engine was of the decisive field (a triage priority, a fault severity): from its own token
log-probabilities, as OpenAI's ``logprobs`` report them (app/field/confidence.js is the same code).

The decisive value's probability is the product of the probabilities of the tokens that wrote it (the tokens that
overlap its characters in the answer), each under the distribution it was picked from (the grammar's mask applied,
so the choice is among the values the schema allows). ``review`` turns it into "high" or "low" with the rules'
threshold.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any


def value_span(content: str, field: str) -> tuple[int, int] | None:
    """Character span of the top-level string value of ``field`` in a compact JSON answer, or None."""
    try:
        value = json.loads(content)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get(field), str):
        return None
    m = re.search(re.escape(json.dumps(field)) + r"\s*:\s*" + re.escape(json.dumps(value[field], ensure_ascii=False)),
                  content)
    if m is None:
        return None
    start = m.end() - len(json.dumps(value[field], ensure_ascii=False)) + 1  # after the opening quote
    return start, m.end() - 1


def decisive_probability(content: str, tokens: Sequence[dict[str, Any]], field: str) -> float | None:
    """tokens: OpenAI ``logprobs.content`` entries ({"token", "logprob"}) whose texts make up ``content``."""
    span = value_span(content, field)
    if span is None or not tokens:
        return None
    if "".join(str(t.get("token", "")) for t in tokens) != content:
        return None  # the token texts do not add up to the answer (a character split across tokens): unknown
    total, pos = 0.0, 0
    for t in tokens:
        end = pos + len(str(t["token"]))
        if end > span[0] and pos < span[1]:
            total += float(t["logprob"])
        pos = end
    return round(math.exp(total), 6)
