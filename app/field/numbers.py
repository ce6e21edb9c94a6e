"""Numbers: rounding and printing them the same way in Python and JS, unit conversion, and the numbers an answer
states that its input does not contain."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from . import patterns
from .rules import Quantity, ReadingError, Rules, Unit, show

# half a unit in the last place of a number written with 0..6 decimals ("45" stands for 44.5..45.5); literals, so
# that no power is computed (Math.pow and ** may differ in the last bit between engines)
_HALF_ULP = (0.5, 0.05, 0.005, 0.0005, 0.00005, 0.000005, 0.0000005)
_IN_TEXT = re.compile(f"(?<![A-Za-z0-9.,])({patterns.NUMBER}){patterns.NUMBER_END}")


def round4(x: float) -> float:
    """Round to 4 decimals, halves up, exactly as JS `Math.floor(x * 10000 + 0.5) / 10000`; from 1e15 up a double
    has no decimals to round (and scaling would change it), so it is returned as it is."""
    if not abs(x) < 1e15:
        return x
    return math.floor(x * 10000 + 0.5) / 10000


def fmt_num(x: float) -> str:
    """The shortest text that reads back as x: "84", "40.6" (Python's repr and JS's String agree on these)."""
    return show(round4(float(x)))


def fmt_quantity(x: float, unit: Unit) -> str:
    if not unit.display:
        return fmt_num(x)
    return fmt_num(x) + ("" if unit.joined else " ") + unit.display


def fmt_range(low: float, high: float, unit: Unit) -> str:
    return fmt_num(low) + "–" + fmt_quantity(high, unit)


def to_canonical(q: Quantity, value: float, unit: str) -> float:
    factor, offset = q.units[unit]
    return round4((value + offset) * factor)


def from_canonical(q: Quantity, canonical: float, unit: str) -> float:
    factor, offset = q.units[unit]
    return round4(canonical / factor - offset)


def convert(quantity: str, value: float, unit: str, to: str, rules: Rules) -> float:
    """value in `unit` -> the same quantity in unit `to`, rounded to 4 decimals."""
    q = rules.quantity(quantity)
    for u in (unit, to):
        if u not in q.units:
            raise ReadingError(f'unknown unit "{show(u)}" for {q.id}: use one of {", ".join(q.units)}')
    return from_canonical(q, to_canonical(q, float(value), unit), to)


def parse_number(text: str) -> float:
    return float(text.replace(",", ""))


def numbers_in(text: str) -> list[tuple[str, float]]:
    """Every number written in text, as written and as a value (signs ignored: "P-3" holds 3, not -3)."""
    return [(m.group(1), parse_number(m.group(1))) for m in _IN_TEXT.finditer(text)]


def unsupported_numbers(answer_text: str, input_text: str, known: Iterable[float] = ()) -> list[str]:
    """Numbers the answer states that neither the input text nor `known` (e.g. readings in other units) holds,
    as written in the answer, each once, in order. A number matches a value that it rounds: "45" matches 45.04."""
    values = [v for _, v in numbers_in(input_text)] + [abs(float(v)) for v in known]
    out: list[str] = []
    for text, value in numbers_in(answer_text):
        decimals = len(text.split(".")[1]) if "." in text else 0
        tol = _HALF_ULP[decimals]
        if text not in out and not any(abs(value - v) <= tol for v in values):
            out.append(text)
    return out
