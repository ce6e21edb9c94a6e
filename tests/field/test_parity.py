"""Python and JS agree on texts nobody wrote by hand: a fixed-seed mix of field notes, readings, units, phrases,
negations, odd spacing and other scripts, run through both sides (Node runs app/field/*.js)."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from runner import dumps, same

from app.field import KINDS, evaluate, load_rules, parse_readings, review, unsupported_numbers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORDS = ["SpO2", "sats", "HR", "pulse", "RR", "BP", "temp", "T", "glucose", "GCS", "AVPU", "pressure", "discharge",
         "vibration", "bearing temp", "winding", "H2S", "CO", "O2", "oxygen", "LEL", "voltage", "current", "megger",
         "IR", "SpO₂", "hr"]
NUMBERS = ["84", "84%", "91", "38", "131", "8", "32", "85/50", "185/100", "120/80 mmHg", "40.6", "104", "-5", "2.5",
           "45", "1,200", "435", "7.1", "0.3", "15", "12", "19", "540", "0.4", "10/15", "3.0", "16.8", "2", "0200",
           "1e3", "12,5", "1.2.3"]
UNITS = ["%", " %", "C", "°C", " °F", "F", "mg/dL", "mmol/L", "psi", "PSI", "bar", "kPa", "mm/s", "in/s", "ppm", "V",
         "A", "a", "MΩ", "mΩ", "bpm", "/min", "kg", "lb", "L", "min", "% LEL"]
OTHER = ["no", "not", "denies", "without", "and", "but", "chest pain", "not breathing", "seizure", "stroke", "fire",
         "fire pump", "smoke", "arcing", "gas leak", "unresponsive", "confused", "P-3", "p3", "G-1", "C-1", "mud pump",
         "compressor", "generator", "chiller", "MCC", "pump", ",", ".", ";", ":", "=", "-", "/", "(", ")", "\n",
         "\t", "\u00a0", "🔥", "Ω", "İ", "ı", "ſ", "K", "Давление", "発電機", "é", "the", "at", "is", "of", "now"]
FRAGMENTS = WORDS + NUMBERS + UNITS + OTHER


def _text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 10)):
        if rng.random() < 0.5:  # a reading-shaped triple, often slightly off
            parts.append(rng.choice(WORDS) + rng.choice([" ", "", ": ", " is ", "="]) + rng.choice(NUMBERS) +
                         rng.choice(["", " ", ""]) + rng.choice([*UNITS, ""]))
        else:
            parts.append(rng.choice(FRAGMENTS))
    return "".join(p + rng.choice(["", " ", " ", " ", "  ", ", "]) for p in parts)


def _completion(rng: random.Random, kind: str) -> dict[str, Any]:
    content = rng.choice([
        '{"probable": ["x"], "priority": "minor", "interventions": ["CPR"]}',
        '{"probable": ["x"], "priority": "immediate", "interventions": ["CPR", "tourniquet"]}',
        '{"reading_summary": "84 then 91", "context": "not a diagnosis of diabetes", "next_step": "seek urgent care"}',
        '{"asset": "P-3", "probable_causes": ["a"], "recommended_action": "b 450 psi", "escalate_if": ["c"], '
        '"severity": "critical"}',
        '{"priority": 7, "extra": null, "ключ": []}', "[1, 2]", "not json 42", "", '{"a": ' * 3,
    ])
    return {"content": content, "finish_reason": rng.choice(["stop", "stop", "length", None]),
            "decisive_probability": rng.choice([None, 0.1, 0.6, 0.99])}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_python_and_js_agree_on_random_texts() -> None:
    rng = random.Random(20261201)
    cases = []
    for _ in range(1000):
        kind = rng.choice(KINDS)
        cases.append({"kind": kind, "text": _text(rng), "completion": _completion(rng, kind)})
    done = subprocess.run(["node", str(HERE / "parity.mjs")], input=json.dumps({"cases": cases}), text=True,
                          capture_output=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    js = json.loads(done.stdout)
    rules = load_rules()
    found = 0
    for case, theirs in zip(cases, js, strict=True):
        kind, text, completion = case["kind"], case["text"], case["completion"]
        readings = parse_readings(text, rules, kind)
        ours = {"readings": readings, "verdict": evaluate(kind, readings, text, rules),
                "card": review(kind, text, [], completion, rules),
                "unsupported": unsupported_numbers(completion["content"], text)}
        found += len(readings)
        assert same(ours, theirs), f"\ntext: {text!r}\n python: {dumps(ours)}\n js:     {dumps(theirs)}"
    assert found > 200, "the random texts should hold plenty of readings"
