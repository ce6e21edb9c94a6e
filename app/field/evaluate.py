"""The verdict on readings and text: which rules fire, which readings are implausible.

escalate: a limit or a danger phrase fired (wins over everything); implausible: a reading outside its plausible
range (re-measure; it is checked against no limit and never counts as in range); in_range: readings, none of them
out; no_readings: nothing to check.
"""

from __future__ import annotations

from typing import Any

from . import patterns
from .numbers import fmt_num, fmt_quantity, fmt_range, from_canonical, to_canonical
from .readings import Reading, detect_asset
from .rules import KINDS, OPS, Limit, ReadingError, Rules, RulesError, show


def _fill(template: str, values: dict[str, str]) -> str:
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    return out


def resolve_asset(kind: str, text: str, rules: Rules, asset: str | None) -> dict[str, Any] | None:
    """The asset a form names (an asset id, alias or class, or any text naming one), else for a fault the one the
    text names."""
    if asset is not None:
        for a in rules.assets.values():
            if patterns.key(asset) == patterns.key(a.id):
                return {"id": a.id, "class": a.cls, "label": a.label}
        if asset in rules.asset_classes:
            return {"id": None, "class": asset, "label": rules.asset_classes[asset][0]}
        found = detect_asset(asset, rules)
        if found:
            return found
    return detect_asset(text, rules) if kind == "fault" else None


def normalize_reading(r: Reading, rules: Rules) -> Reading:
    """A reading with its canonical value recomputed from value and unit (a reading is data: it may come from
    anywhere)."""
    q = rules.quantity(r.get("quantity"))
    unit, value = r.get("unit"), r.get("value")
    if not isinstance(unit, str) or unit not in q.units:
        raise ReadingError(f'unknown unit "{show(unit)}" for {q.id}: use one of {", ".join(q.units)}')
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ReadingError(f'{q.id}: "{show(value)}" is not a number')
    return {**r, "canonical_value": to_canonical(q, float(value), unit), "canonical_unit": q.canonical_unit}


def _applies(lim: Limit, kind: str, asset: dict[str, Any] | None) -> bool:
    if kind not in lim.kinds:
        return False
    if lim.asset is not None:
        return asset is not None and asset["id"] == lim.asset
    if lim.asset_class is not None:
        return asset is not None and asset["class"] == lim.asset_class
    return True


def _check(lim: Limit, r: Reading, rules: Rules, asset: dict[str, Any] | None) -> str | None:
    """The fired message, or None."""
    q = rules.quantities[lim.quantity]
    unit = r["unit"]
    if unit in lim.limits:
        x, at = float(r["value"]), unit
    else:
        at = next(iter(lim.limits))
        x = from_canonical(q, r["canonical_value"], at)
    limit = lim.limits[at]
    u = rules.units[at]
    if lim.op == "outside":
        fires = x < limit[0] or x > limit[1]
        limit_text = fmt_range(limit[0], limit[1], u)
    else:
        fires = {"<": x < limit, "<=": x <= limit, ">": x > limit, ">=": x >= limit}[lim.op]
        limit_text = fmt_quantity(limit, u)
    if not fires:
        return None
    value = fmt_quantity(r["value"], rules.units[unit])
    if at != unit:
        value += f" ({fmt_quantity(x, u)})"
    return _fill(lim.message, {"label": q.label, "value": value, "op": OPS[lim.op], "limit": limit_text,
                               "asset": asset["id"] if asset and asset["id"] else ""})


def implausible_message(r: Reading, rules: Rules) -> str | None:
    q = rules.quantities[r["quantity"]]
    low, high = q.plausible
    c = r["canonical_value"]
    if low <= c <= high:
        return None
    canon = rules.units[q.canonical_unit]
    value = fmt_quantity(r["value"], rules.units[r["unit"]])
    if r["unit"] != q.canonical_unit:
        value += f" ({fmt_quantity(c, canon)})"
    return _fill(rules.texts["implausible"], {"label": q.label, "value": value, "range": fmt_range(low, high, canon)})


def evaluate(kind: str, readings: list[Reading], text: str, rules: Rules, asset: str | None = None) -> dict[str, Any]:
    """{"status", "fired": [{"rule", "message", "reading", "phrase"}], "implausible": [{"message", "reading"}],
    "readings", "asset"} for a task's readings and text."""
    if kind not in KINDS:
        raise RulesError(f'unknown task kind "{show(kind)}": use one of {", ".join(KINDS)}')
    where = resolve_asset(kind, text, rules, asset)
    limits = [lim for lim in rules.limits if _applies(lim, kind, where)]
    replaced = {rid for lim in limits for rid in lim.replaces}
    limits = [lim for lim in limits if lim.id not in replaced]
    normal = [normalize_reading(r, rules) for r in readings]
    fired: list[dict[str, Any]] = []
    implausible: list[dict[str, Any]] = []
    for r in normal:
        why = implausible_message(r, rules)
        if why is not None:
            implausible.append({"message": why, "reading": r})
            continue
        for lim in limits:
            if lim.quantity == r["quantity"]:
                msg = _check(lim, r, rules, where)
                if msg is not None:
                    fired.append({"rule": lim.id, "message": msg, "reading": r, "phrase": None})
    for p in rules.phrases:
        if kind not in p.kinds:
            continue
        span = patterns.find_phrase(p.pattern, p.except_pattern, rules.compiled, text)
        if span is not None:
            matched = text[span.start:span.end]
            fired.append({"rule": p.id, "message": _fill(p.message, {"label": p.label, "text": matched}),
                          "reading": None, "phrase": {"text": matched, "start": span.start, "end": span.end}})
    status = "escalate" if fired else "implausible" if implausible else "in_range" if normal else "no_readings"
    return {"status": status, "fired": fired, "implausible": implausible, "readings": normal, "asset": where}


__all__ = ["evaluate", "fmt_num", "implausible_message", "normalize_reading", "resolve_asset"]
