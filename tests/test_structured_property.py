"""Property test of constrained decoding in the reference engine: 50 random schemas and tool sets from a fixed seed,
on the default model; every completion is complete (finish "stop", not cut by max_tokens) and its output parses and
validates (jsonschema, an implementation independent of xgrammar)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from random_schemas import MAX_TOKENS, cases

from model_prep.reference import Decoding, Engine, load
from model_prep.reference.structured import from_request, split_tool_calls

SEED = 20261206
N = 50


@pytest.fixture(scope="module")
def engine(smollm2_package: Path) -> Engine:
    return load(smollm2_package)


@pytest.mark.slow
def test_random_schemas_and_tools_always_validate(engine: Engine) -> None:
    prompt = [{"role": "system", "content": "Answer with the requested JSON."},
              {"role": "user", "content": "Pump P-3 discharge 435 psi, vibration slightly high. Report."}]
    for i, case in enumerate(cases(SEED, N)):
        if "schema" in case:
            s = from_request({"type": "json_schema", "json_schema": {"name": "case", "schema": case["schema"]}})
        else:
            s = from_request(tools=case["tools"], tool_choice=case["tool_choice"])
        done = engine.generate(prompt, max_tokens=MAX_TOKENS, decoding=Decoding(grammar=s.grammar),
                               tools=s.tools or None)
        assert done.finish_reason == "stop", f"case {i} was cut at {MAX_TOKENS} tokens: {done.text!r}"
        if "schema" in case:
            jsonschema.validate(json.loads(done.text), case["schema"])
            continue
        rest, calls = split_tool_calls(done.text)
        assert calls and rest == "", f"case {i}: {done.text!r}"
        params = {t["function"]["name"]: t["function"]["parameters"] for t in case["tools"]}
        for call in calls:
            name = call["function"]["name"]
            assert name in params
            if isinstance(case["tool_choice"], dict):
                assert name == case["tool_choice"]["function"]["name"]
            jsonschema.validate(json.loads(call["function"]["arguments"]), params[name])
