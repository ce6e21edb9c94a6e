"""Every shared vector (tests/field/vectors.json) through the Python side: the exact output, and the hand-written
check (tests/js/field.test.js runs the same vectors through the JS side)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runner import default_inputs, dumps, project, run, same

from app.field.rules import Rules, Tasks

VECTORS = json.loads((Path(__file__).with_name("vectors.json")).read_text())


@pytest.fixture(scope="module")
def inputs() -> tuple[Rules, Tasks]:
    return default_inputs()


def test_the_file_holds_enough_vectors_of_every_function() -> None:
    assert VECTORS["format"] == "fieldllm-field-vectors" and VECTORS["version"] == 1
    fns = [v["fn"] for v in VECTORS["vectors"]]
    assert len(fns) >= 80
    for fn in ("parse_readings", "readings_from_form", "convert", "evaluate", "unsupported_numbers", "review",
               "task_schema", "task_request", "load_rules", "load_tasks"):
        assert fns.count(fn) >= 1, fn
    assert len({v["name"] for v in VECTORS["vectors"]}) == len(fns), "vector names are unique"


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=[v["name"] for v in VECTORS["vectors"]])
def test_vector(vector: dict[str, Any], inputs: tuple[Rules, Tasks]) -> None:
    rules, tasks = inputs
    result = run(vector, rules, tasks)
    assert same(result, vector["expect"]), f"\n got:    {dumps(result)}\n expect: {dumps(vector['expect'])}"
    if vector["check"] is not None:
        assert same(project(vector["fn"], result, vector["check"]), vector["check"])
