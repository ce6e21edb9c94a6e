"""Readings: numbers with units from free text (a deterministic parser) and from the screens' form fields.

A reading is {"quantity", "value", "unit", "canonical_value", "canonical_unit", "text", "start", "end", "source"}:
value in its own unit, canonical_value in the quantity's canonical unit (4 decimals), text the span it was read
from (start/end in code points) or, for a form field, how it is shown. docs/RULES.md states the parsing rules.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from . import patterns
from .numbers import fmt_quantity, parse_number, to_canonical
from .rules import DOMAIN_OF_KIND, DOMAINS, KINDS, Quantity, ReadingError, Rules, RulesError, show

Reading = dict[str, Any]
_FORM_NUMBER = re.compile(f"[ \\t]*(-?)({patterns.NUMBER})[ \\t]*")
_FORM_BP = re.compile("[ \\t]*([0-9]{2,3})[ \\t]*/[ \\t]*([0-9]{2,3})[ \\t]*")


def make_reading(q: Quantity, value: float, unit: str, text: str, start: int | None, end: int | None,
                 source: str) -> Reading:
    return {"quantity": q.id, "value": value, "unit": unit, "canonical_value": to_canonical(q, value, unit),
            "canonical_unit": q.canonical_unit, "text": text, "start": start, "end": end, "source": source}


def detect_asset(text: str, rules: Rules) -> dict[str, Any] | None:
    """The asset a text names: a named asset (any of its aliases) wherever it appears, else the asset class whose
    keyword comes first; {"id", "class", "label"} (id None for a class), or None."""
    c = rules.compiled
    m = c.asset.search(text) if c.asset else None
    if m:
        asset = rules.assets[c.asset_by_key[patterns.key(m.group(0))]]
        return {"id": asset.id, "class": asset.cls, "label": asset.label}
    m = c.asset_class.search(text) if c.asset_class else None
    if m:
        cid = c.class_by_key[patterns.key(m.group(0))]
        return {"id": None, "class": cid, "label": rules.asset_classes[cid][0]}
    return None


def domain_for(kind: str | None, text: str, rules: Rules) -> str:
    """Which quantities win where a word or unit could be either: the task's (fault: equipment, triage and
    screening: clinical); with no task, equipment when the text names an asset, else clinical."""
    if kind is None:
        return "equipment" if detect_asset(text, rules) else "clinical"
    if kind not in KINDS:
        raise RulesError(f'unknown task kind "{show(kind)}": use one of {", ".join(KINDS)}')
    return DOMAIN_OF_KIND[kind]


@dataclass
class _Candidate:
    start: int
    end: int
    readings: list[Reading]
    hour_word: bool  # its word reads as "hours" after a bare number ("2 hr 30")


def _pick(rules: Rules, word: str, domain: str, unit: str | None = None) -> tuple[Quantity, bool] | None:
    """The quantity a word names: among those that take `unit` (if given), the domain's first, else the first."""
    entries = [(rules.quantities[q], needs) for q, needs in rules.compiled.words.get(patterns.key(word), [])]
    if unit is not None:
        entries = [e for e in entries if unit in e[0].units]
    ours = [e for e in entries if e[0].domain == domain]
    chosen = ours or entries
    return chosen[0] if chosen else None


def _unit_default(rules: Rules, unit: str, domain: str) -> Quantity | None:
    other = DOMAINS[1] if domain == DOMAINS[0] else DOMAINS[0]
    for d in (domain, other):
        qid = rules.unit_defaults.get(d, {}).get(unit)
        if qid:
            return rules.quantities[qid]
    return None


def _value(sign: str | None, number: str) -> float:
    v = parse_number(number)
    return -v if sign else v


def _word_candidate(rules: Rules, text: str, m: re.Match[str], domain: str) -> _Candidate | None:
    picked = _pick(rules, m.group(1), domain)
    if picked is None:
        return None
    q, needs_unit = picked
    value = _value(m.group(2), m.group(3))
    end = m.end(3)
    unit = rules.resolve_unit(m.group(4)) if m.group(4) else None
    if unit is not None:
        if unit not in q.units:
            return None  # a unit the quantity does not take: a misreading, not a reading
        end = m.end(4)
    else:
        nxt = text[end:end + 1]
        if needs_unit or re.match("[A-Za-z/]", nxt) or rules.compiled.not_a_reading.match(text, end):
            return None  # "O2 2L", "fever of 3 days": something unit-like follows that is not the quantity's
        unit = q.default_unit
        if unit is None:
            unit = next((u for mx, u in q.bare_units if mx is None or value <= mx), None)
        if unit is None:
            return None
    reading = make_reading(q, value, unit, text[m.start():end], m.start(), end, "text")
    return _Candidate(m.start(), end, [reading], patterns.key(m.group(1)) in rules.compiled.hour_words)


def _unit_candidate(rules: Rules, text: str, m: re.Match[str], domain: str) -> _Candidate | None:
    unit = rules.resolve_unit(m.group(3))
    if unit is None:
        return None
    value = _value(m.group(1), m.group(2))
    start = m.start(1) if m.group(1) else m.start(2)
    if m.group(4):
        picked = _pick(rules, m.group(4), domain, unit)
        if picked is not None:
            q = picked[0]
            return _Candidate(start, m.end(4), [make_reading(q, value, unit, text[start:m.end(4)], start, m.end(4),
                                                              "text")], False)
    q2 = _unit_default(rules, unit, domain) or _named_before(rules, text, start, unit, domain)
    if q2 is None:
        return None
    end = m.end(3)
    return _Candidate(start, end, [make_reading(q2, value, unit, text[start:end], start, end, "text")], False)


LOOKBACK = 48  # code points: how far back a unit that several quantities share looks for the quantity's word
_CLAUSE_BREAK = re.compile("[.;!?\n0-9]")


@lru_cache(maxsize=256)
def _words_regex(words: tuple[str, ...]) -> re.Pattern[str]:
    return patterns.phrase_regex(words)


def _named_before(rules: Rules, text: str, start: int, unit: str, domain: str) -> Quantity | None:
    """For a unit with no default quantity ("25 ppm": H2S or CO?): the quantity whose word comes last before the
    number, at most LOOKBACK code points back and in the same clause (no digit or . ; ! ? or line break between),
    among the quantities of the domain that take the unit. "H2S detector at the shakers reading 25 ppm" is H2S."""
    window = text[max(0, start - LOOKBACK):start]
    best: tuple[int, Quantity] | None = None
    for q in rules.quantities.values():
        if unit not in q.units or q.domain != domain or not q.words:
            continue
        for m in _words_regex(q.words).finditer(window):
            if _CLAUSE_BREAK.search(window, m.end()) is None and (best is None or m.end() > best[0]):
                best = (m.end(), q)
    return best[1] if best else None


def _bp_candidate(rules: Rules, text: str, m: re.Match[str], first: int) -> _Candidate | None:
    unit_text = m.group(first + 2)
    if unit_text is not None and rules.resolve_unit(unit_text) != rules.bp_unit:
        return None
    start, end = m.start(), m.end() if unit_text is not None else m.end(first + 1)
    span = text[start:end]
    sys_q, dia_q = rules.quantities[rules.bp_systolic], rules.quantities[rules.bp_diastolic]
    return _Candidate(start, end, [
        make_reading(sys_q, parse_number(m.group(first)), rules.bp_unit, span, start, end, "text"),
        make_reading(dia_q, parse_number(m.group(first + 1)), rules.bp_unit, span, start, end, "text"),
    ], False)


def _digit_before(text: str, low: int, at: int) -> bool:
    """Whether text[low:at] ends in a digit, blanks aside."""
    i = at - 1
    while i >= low and text[i] in " \t\u00a0":
        i -= 1
    return i >= low and text[i] in "0123456789"


def parse_readings(text: str, rules: Rules, kind: str | None = None) -> list[Reading]:
    """Every reading in free text, in order. Candidates from four patterns (word + number + unit, number + unit
    [+ word], blood pressure with its word or unit) are taken left to right, the longest at each start, never
    overlapping."""
    domain = domain_for(kind, text, rules)
    c = rules.compiled
    found: list[_Candidate | None] = []
    found += [_bp_candidate(rules, text, m, 2) for m in c.bp.finditer(text)]
    found += [_bp_candidate(rules, text, m, 1) for m in c.bp_bare.finditer(text)]
    found += [_word_candidate(rules, text, m, domain) for m in c.word.finditer(text)]
    found += [_unit_candidate(rules, text, m, domain) for m in c.unit.finditer(text)]
    candidates = sorted((f for f in found if f is not None), key=lambda f: (f.start, f.start - f.end))
    out: list[Reading] = []
    last_end = 0
    for cand in candidates:
        if cand.start < last_end:
            continue
        if cand.hour_word and _digit_before(text, last_end, cand.start):
            continue  # "for 2 hr 30 min": hours, not a heart rate
        out.extend(cand.readings)
        last_end = cand.end
    return out


def _form_value(q: str, value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise ReadingError(f'{q}: "{show(value)}" is not a number')
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ReadingError(f'{q}: "{show(value)}" is not a number')
        return float(value)
    m = _FORM_NUMBER.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise ReadingError(f'{q}: "{show(value)}" is not a number')
    return _value(m.group(1), m.group(2))


def _form_unit(rules: Rules, q: Quantity, unit: Any) -> str:
    if unit is None or unit == "":
        if q.default_unit is None:
            raise ReadingError(f"{q.id}: a unit is needed: use one of {', '.join(q.units)}")
        return q.default_unit
    resolved = unit if isinstance(unit, str) and unit in q.units else \
        rules.resolve_unit(unit) if isinstance(unit, str) else None
    if resolved is None or resolved not in q.units:
        raise ReadingError(f'unknown unit "{show(unit)}" for {q.id}: use one of {", ".join(q.units)}')
    return resolved


def readings_from_form(fields: list[dict[str, Any]], rules: Rules) -> list[Reading]:
    """[{"quantity", "value", "unit"}] from a screen -> readings (source "form"). Blood pressure is one field,
    quantity "bp" (blood_pressure.form_quantity) with value "120/80"; it gives a systolic and a diastolic reading."""
    out: list[Reading] = []
    for f in fields:
        qid = f.get("quantity")
        if qid == rules.bp_form_quantity:
            value = f.get("value")
            m = _FORM_BP.fullmatch(value) if isinstance(value, str) else None
            if not m:
                raise ReadingError(f'{qid}: "{show(value)}" is not a blood pressure such as 120/80')
            unit = _form_unit(rules, rules.quantities[rules.bp_systolic], f.get("unit"))
            sys_q, dia_q = rules.quantities[rules.bp_systolic], rules.quantities[rules.bp_diastolic]
            for q, number in ((sys_q, m.group(1)), (dia_q, m.group(2))):
                v = parse_number(number)
                out.append(make_reading(q, v, unit, f"{q.label} {fmt_quantity(v, rules.units[unit])}", None, None,
                                        "form"))
            continue
        if not isinstance(qid, str) or qid not in rules.quantities:
            raise ReadingError(f'unknown quantity "{show(qid)}": use one of '
                               f'{", ".join([*rules.quantities, rules.bp_form_quantity])}')
        q = rules.quantities[qid]
        value = _form_value(qid, f.get("value"))
        unit = _form_unit(rules, q, f.get("unit"))
        out.append(make_reading(q, value, unit, f"{q.label} {fmt_quantity(value, rules.units[unit])}", None, None,
                                "form"))
    return out
