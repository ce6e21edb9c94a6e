"""`fieldllm eval` as CI runs it: the default model through the reference engine and the rules.

The whole case file, greedy, must give 100% schema-valid answers and 100% escalation recall on red-flag cases (the
rules decide, whatever the model says); a few cases also run with sampled seeds to exercise the consistency figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.eval.cases import load_cases
from model_prep.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def _eval(package: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "app.cli", "eval", "--package", str(package), "--json",
                          *args], cwd=ROOT, capture_output=True, text=True, timeout=3000)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.slow
def test_every_case_greedy_is_valid_and_every_red_flag_escalates(smollm2_package: Path) -> None:
    report = _eval(smollm2_package, "--seeds", "0", "--require")
    s = report["summary"]
    assert s["cases"] == len(load_cases())
    assert s["schema_valid"] == 1.0, s["invalid"]
    assert s["escalation_recall"] == 1.0, s["missed"]
    assert s["rules_recall"] == 1.0, s["missed"]
    print(json.dumps(s))


@pytest.mark.slow
def test_seeded_runs_report_consistency(smollm2_package: Path) -> None:
    report = _eval(smollm2_package, "--seeds", "3", "--limit", "3")
    s = report["summary"]
    assert s["seeds"] == 3 and s["cases"] == 3
    assert 0 <= s["consistency"] <= 1 and 0 <= s["model_consistency"] <= 1
    for case in report["cases"]:
        assert case["completion_tokens"] > 0 and isinstance(case["consistent"], bool)


def test_bad_case_files_say_what_is_wrong(tmp_path: Path) -> None:
    from app.eval.cases import load_cases as load

    bad = tmp_path / "cases.json"
    for body, words in [("[]", "expected"), ('{"cases": [{"kind": "chat", "text": "x", "escalate": true}]}', "kind"),
                        ('{"cases": [{"kind": "fault", "text": "x", "escalate": "yes"}]}', "escalate"),
                        ('{"format": "other", "cases": [{"kind": "fault", "text": "x", "escalate": true}]}',
                         "supports")]:
        bad.write_text(body)
        with pytest.raises(InputError, match=words):
            load(bad)
