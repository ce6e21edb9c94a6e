"""Decisive-field confidence from logprobs: Python and JS give the same numbers on the same answers."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

from app.field.confidence import decisive_probability, value_span

ROOT = Path(__file__).resolve().parents[2]
ANSWER = '{"probable": ["fall"], "priority": "immediate", "interventions": ["oxygen"]}'
# tokens that write ANSWER; the value "immediate" is written by the 2nd-4th of the middle tokens
TOKENS = [{"token": '{"probable": ["fall"], "priority": "', "logprob": -0.01},
          {"token": "im", "logprob": math.log(0.5)}, {"token": "medi", "logprob": math.log(0.9)},
          {"token": 'ate", "interventions": ["oxygen"]}', "logprob": -0.2}]
CASES = [
    (ANSWER, TOKENS, "priority"),
    (ANSWER, TOKENS, "probable"),  # not a string value
    (ANSWER, TOKENS[:2], "priority"),  # tokens do not make up the answer
    ("not json", TOKENS, "priority"),
    ('{"next_step": "seek urgent care"}', [{"token": '{"next_step": "seek urgent care"}', "logprob": -0.1}],
     "next_step"),
]


def test_value_span() -> None:
    start, end = value_span(ANSWER, "priority") or (0, 0)
    assert ANSWER[start:end] == "immediate"


def test_probability_is_the_product_over_the_value_tokens() -> None:
    # the first token ends with the opening quote only: it does not overlap the value
    assert decisive_probability(ANSWER, TOKENS, "priority") == round(0.5 * 0.9 * math.exp(-0.2), 6)
    assert decisive_probability(ANSWER, TOKENS, "probable") is None
    assert decisive_probability(ANSWER, TOKENS[:2], "priority") is None


def test_js_gives_the_same_numbers() -> None:
    script = ("import {decisiveProbability} from './app/field/confidence.js';"
              "const cases = JSON.parse(process.argv[1]);"
              "console.log(JSON.stringify(cases.map(([c, t, f]) => decisiveProbability(c, t, f))));")
    out = subprocess.run(["node", "--input-type=module", "-e", script, json.dumps(CASES)], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert json.loads(out) == [decisive_probability(c, t, f) for c, t, f in CASES]
