"""tests/eval/cases.json: the evaluation cases of issue 9 §5 are well-formed, balanced and rule-checkable."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

CASES_FILE = Path(__file__).with_name("cases.json")

MUST_HAVE = {
    "fault": ["probable_causes", "recommended_action", "escalate_if", "severity"],
    "triage": ["probable", "priority", "interventions"],
    "screening": ["reading_summary", "context", "next_step"],
}
MIN_PER_KIND = {"fault": 22, "triage": 22, "screening": 18}
MIN_TOTAL = 66
KEYS = {"id", "kind", "text", "escalate", "red_flag", "must_have"}
OPTIONAL_KEYS = {"note"}
IMPLAUSIBLE_NOTE = "implausible: re-measure"
# The danger sign phrases a deterministic rule may fire on without any number.
DANGER_PHRASES = [
    "chest pain",
    "unresponsive",
    "not breathing",
    "seizure",
    "severe bleeding",
    "gas alarm",
    "smoke",
    "arcing",
    "fire",
]
NEGATION = re.compile(r"\b(no|denies|denied|without|nor)\b[^.;]{0,40}$", re.IGNORECASE)
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
COMPARATOR = re.compile(r"[<>≤≥]")


def _numbers(s: str) -> set[float]:
    return {float(n.replace(",", "")) for n in NUMBER.findall(s)}


def _phrase_hits(text: str, phrase: str) -> list[re.Match[str]]:
    return list(re.finditer(rf"\b{re.escape(phrase)}\b", text, re.IGNORECASE))


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return json.loads(CASES_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cases(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["cases"]


def test_format_and_version(doc: dict[str, Any]) -> None:
    assert doc["format"] == "fieldllm-eval-cases"
    assert doc["version"] == 1
    assert isinstance(doc["cases"], list)


def test_case_fields(cases: list[dict[str, Any]]) -> None:
    for c in cases:
        assert KEYS <= set(c) <= KEYS | OPTIONAL_KEYS, c.get("id")
        assert isinstance(c["id"], str) and c["id"], c
        assert c["kind"] in MUST_HAVE, c["id"]
        assert c["id"].startswith(c["kind"] + "-"), c["id"]
        assert isinstance(c["text"], str) and c["text"].strip(), c["id"]
        assert isinstance(c["escalate"], bool), c["id"]
        assert c["red_flag"] is None or (isinstance(c["red_flag"], str) and c["red_flag"].strip()), c["id"]


def test_unique_ids(cases: list[dict[str, Any]]) -> None:
    dupes = [i for i, n in Counter(c["id"] for c in cases).items() if n > 1]
    assert not dupes


def test_counts_per_kind(cases: list[dict[str, Any]]) -> None:
    counts = Counter(c["kind"] for c in cases)
    for kind, least in MIN_PER_KIND.items():
        assert counts[kind] >= least, (kind, counts[kind])
    assert len(cases) >= MIN_TOTAL


def test_escalation_balance(cases: list[dict[str, Any]]) -> None:
    share = sum(c["escalate"] for c in cases) / len(cases)
    assert 0.35 <= share <= 0.65, share
    for kind in MUST_HAVE:  # each kind has both decisions to test
        assert {c["escalate"] for c in cases if c["kind"] == kind} == {True, False}, kind


def test_text_length(cases: list[dict[str, Any]]) -> None:
    long = [c["id"] for c in cases if len(c["text"]) >= 300]
    assert not long


def test_must_have_matches_kind(cases: list[dict[str, Any]]) -> None:
    for c in cases:
        assert c["must_have"] == MUST_HAVE[c["kind"]], c["id"]


def test_escalate_cases_have_a_visible_red_flag(cases: list[dict[str, Any]]) -> None:
    """The red flag is either a danger phrase of the text or a reading whose number the text contains."""
    for c in (c for c in cases if c["escalate"]):
        flag, text = c["red_flag"], c["text"]
        assert flag, c["id"]
        phrases = [p for p in DANGER_PHRASES if _phrase_hits(flag, p)]
        if phrases:
            assert any(_phrase_hits(text, p) for p in phrases), c["id"]
            continue
        reading = COMPARATOR.split(flag, maxsplit=1)
        assert len(reading) == 2, (c["id"], "red_flag needs a comparison such as 'SpO2 84% < 90%'")
        assert _numbers(reading[0]) & _numbers(text), (c["id"], flag)


def test_non_escalate_cases(cases: list[dict[str, Any]]) -> None:
    """No red flag, and any danger phrase in the text is negated ("no chest pain", "denies ...")."""
    for c in (c for c in cases if not c["escalate"]):
        assert c["red_flag"] is None, c["id"]
        for p in DANGER_PHRASES:
            for m in _phrase_hits(c["text"], p):
                assert NEGATION.search(c["text"][: m.start()]), (c["id"], p)


def test_implausible_cases(cases: list[dict[str, Any]]) -> None:
    implausible = [c for c in cases if "note" in c]
    assert len(implausible) >= 3
    for c in implausible:
        assert c["note"] == IMPLAUSIBLE_NOTE, c["id"]
        assert c["escalate"] is False and c["red_flag"] is None, c["id"]


def test_coverage(cases: list[dict[str, Any]]) -> None:
    """Every equipment class, and the screening readings in both unit systems."""
    topics = {(c["kind"], c["id"].split("-")[1]) for c in cases}
    for cls in ("pump", "compressor", "generator", "hvac", "electrical", "gas"):
        assert ("fault", cls) in topics, cls
    for topic in ("glucose", "bp", "spirometry", "spo2", "temp"):
        assert ("screening", topic) in topics, topic
    screening = " ".join(c["text"] for c in cases if c["kind"] == "screening")
    assert re.search(r"mg/dL", screening, re.IGNORECASE) and "mmol/L" in screening
    assert re.search(r"\d\s*°?C\b", screening) and re.search(r"\d\s*°?F\b", screening)
    assert re.search(r"\bfasting\b", screening, re.IGNORECASE) and re.search(r"\brandom\b", screening, re.IGNORECASE)
    assert "P-3" in " ".join(c["text"] for c in cases if c["kind"] == "fault")
