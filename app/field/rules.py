"""The rules file (app/field/rules.json) and the tasks file (app/field/tasks.json): read, checked, indexed.

Both files are versioned data (docs/RULES.md). A reader rejects a format or version it does not know, and every
other mistake in a file, with one line that says where. app/field/rules.js is the same code for the browser: both
produce the same messages, which tests/field/vectors.json pins.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from . import patterns

FORMAT = "fieldllm-rules"
VERSION = 1
TASKS_FORMAT = "fieldllm-tasks"
TASKS_VERSION = 1
KINDS = ("fault", "triage", "screening")
DOMAINS = ("clinical", "equipment")
DOMAIN_OF_KIND = {"fault": "equipment", "triage": "clinical", "screening": "clinical"}
OPS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "outside": "outside"}
LIMIT_PLACEHOLDERS = ("label", "value", "op", "limit", "asset")
PHRASE_PLACEHOLDERS = ("label", "text")
TEXTS = {  # the templated texts a card uses, with the placeholders each may hold
    "implausible": ("label", "value", "range"),
    "low_confidence": (),
    "escalate_invalid": ("reasons",),
    "escalate_cut": ("reasons",),
    "invalid": (),
    "cut": (),
    "remeasure": ("reasons",),
}
ALLOW_LISTS = ("triage_interventions", "screening_next_steps")
DEFAULT_RULES = Path(__file__).with_name("rules.json")
DEFAULT_TASKS = Path(__file__).with_name("tasks.json")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class RulesError(ValueError):
    """A rules or tasks file that cannot be used, or a request that names something they do not define."""


class ReadingError(ValueError):
    """A reading that cannot be used: an unknown quantity or unit, a value that is not a number."""


def show(x: Any) -> str:
    """A value as it appears in a message, the same on the Python and the JS side."""
    if isinstance(x, str):
        return x
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int | float):
        return js_number(float(x)) if math.isfinite(x) else "null"
    return "(a list)" if isinstance(x, list) else "(an object)"


def js_number(x: float) -> str:
    """x as JavaScript's String(x) writes it (ECMA-262 Number::toString): the shortest digits that read back as x
    (which Python's repr finds too), positional from 1e-6 to 1e21, else with an exponent."""
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number(-x)
    mantissa, _, exp = repr(x).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + (int(exp) if exp else 0)  # x = 0.<whole><frac> * 10^point, before stripping zeros
    point -= len(whole + frac) - len((whole + frac).lstrip("0"))
    digits = digits.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    e = n - 1
    return digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


@dataclass(frozen=True)
class Unit:
    id: str
    display: str
    joined: bool  # no space between number and symbol ("84%")
    aliases: tuple[str, ...]  # matched in any case
    exact: tuple[str, ...]  # matched in this case only ("A", not "a")


@dataclass(frozen=True)
class Quantity:
    id: str
    label: str
    domain: str
    canonical_unit: str
    units: dict[str, tuple[float, float]]  # unit -> (factor, offset): canonical = (value + offset) * factor
    default_unit: str | None  # the unit of a number given with the quantity's word and no unit
    bare_units: tuple[tuple[float | None, str], ...]  # else by value: the first (max, unit) with value <= max
    plausible: tuple[float, float]  # in the canonical unit
    words: tuple[str, ...]
    unit_words: tuple[str, ...]  # words that name it only when a unit follows the number


@dataclass(frozen=True)
class Limit:
    id: str
    quantity: str
    op: str
    limits: dict[str, Any]  # unit -> number, or [low, high] for "outside"; the first unit is the primary one
    kinds: tuple[str, ...]
    asset_class: str | None
    asset: str | None
    replaces: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class PhraseRule:
    id: str
    label: str
    kinds: tuple[str, ...]
    phrases: tuple[str, ...]
    excepts: tuple[str, ...]
    message: str
    pattern: re.Pattern[str] = field(compare=False)
    except_pattern: re.Pattern[str] | None = field(compare=False)


@dataclass(frozen=True)
class Asset:
    id: str
    cls: str
    label: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class Negation:
    before: tuple[str, ...]
    after: tuple[str, ...]
    window: int
    break_chars: str
    break_words: tuple[str, ...]


class Rules:
    """A checked rules file. `data` is the file as parsed; the rest are indexes and compiled patterns."""

    def __init__(self, data: dict[str, Any], sha256: str | None) -> None:
        self.data = data
        self.sha256 = sha256
        self.version: int = data["version"]
        self.rules_version: str = ""
        self.confidence_threshold = 0.0
        self.units: dict[str, Unit] = {}
        self.quantities: dict[str, Quantity] = {}
        self.unit_defaults: dict[str, dict[str, str]] = {}
        self.bp_words: tuple[str, ...] = ()
        self.bp_systolic = self.bp_diastolic = self.bp_unit = self.bp_form_quantity = ""
        self.hour_words: tuple[str, ...] = ()
        self.not_after_bare_number: tuple[str, ...] = ()
        self.asset_classes: dict[str, tuple[str, tuple[str, ...]]] = {}  # id -> (label, keywords)
        self.assets: dict[str, Asset] = {}
        self.limits: list[Limit] = []
        self.phrases: list[PhraseRule] = []
        self.negation = Negation((), (), 1, "", ())
        self.allow_lists: dict[str, tuple[str, ...]] = {}
        self.diagnosis_phrases: tuple[str, ...] = ()
        self.texts: dict[str, str] = {}
        _check(self, data)
        self.compiled = patterns.Compiled(self)

    def quantity(self, qid: Any) -> Quantity:
        q = self.quantities.get(qid) if isinstance(qid, str) else None
        if q is None:
            raise ReadingError(f'unknown quantity "{show(qid)}": use one of {", ".join(self.quantities)}')
        return q

    def resolve_unit(self, text: str) -> str | None:
        """The unit an alias names (any case; "exact" aliases in their own case only), or None."""
        return self.compiled.unit_by_exact.get(patterns.exact_key(text)) or \
            self.compiled.unit_by_alias.get(patterns.key(text))


# ---- checking a rules file: one line per mistake, saying where ----

def _fail(msg: str) -> RulesError:
    return RulesError(f"rules: {msg}")


def _obj(x: Any, where: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise _fail(f"{where} must be an object")
    return x


def _text(x: Any, where: str) -> str:
    if not isinstance(x, str) or not x:
        raise _fail(f"{where} must be a non-empty string")
    return x


def _is_num(x: Any) -> TypeGuard[float]:
    return not isinstance(x, bool) and isinstance(x, int | float) and math.isfinite(x)


def _num(x: Any, where: str) -> float:
    if not _is_num(x):
        raise _fail(f"{where} must be a number")
    return float(x)


def _texts(x: Any, where: str) -> tuple[str, ...]:
    if not isinstance(x, list) or not x or not all(isinstance(s, str) and s for s in x):
        raise _fail(f"{where} must be a non-empty list of non-empty strings")
    return tuple(x)


def _opt_texts(d: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    return _texts(d[key], f"{where}.{key}") if key in d else ()


def _template(text: str, allowed: tuple[str, ...], where: str) -> str:
    for name in _PLACEHOLDER.findall(text):
        if name not in allowed:
            raise _fail(f'{where}: unknown placeholder "{{{name}}}"')
    return text


def _kinds(d: dict[str, Any], where: str) -> tuple[str, ...]:
    if "kinds" not in d:
        return KINDS
    kinds = _texts(d["kinds"], f"{where}.kinds")
    for k in kinds:
        if k not in KINDS:
            raise _fail(f'{where}: unknown kind "{k}" (kinds are {", ".join(KINDS)})')
    return kinds


def check_header(data: Any, what: str, fmt: str, version: int) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise RulesError(f"{what}: not a JSON object")
    if data.get("format") != fmt or data.get("version") != version or isinstance(data.get("version"), bool):
        found = f'format "{show(data.get("format"))}" version {show(data.get("version"))}'
        raise RulesError(f'{what}: unsupported {found}: this reader supports format "{fmt}" version {version}')
    return data


def _check(r: Rules, d: dict[str, Any]) -> None:
    r.rules_version = _text(d.get("rules_version"), '"rules_version"')
    t = d.get("confidence_threshold")
    if not _is_num(t) or not 0 <= t <= 1:
        raise _fail('"confidence_threshold" must be a number from 0 to 1')
    r.confidence_threshold = float(t)

    for uid, u in _obj(d.get("units"), '"units"').items():
        where = f"units.{uid}"
        u = _obj(u, where)
        display = u.get("display")
        if not isinstance(display, str):
            raise _fail(f"{where}.display must be a string")
        aliases = _texts(u.get("aliases"), f"{where}.aliases")
        r.units[uid] = Unit(uid, display, u.get("joined") is True, aliases, _opt_texts(u, "exact", where))

    for qid, q in _obj(d.get("quantities"), '"quantities"').items():
        r.quantities[qid] = _quantity(r, qid, _obj(q, f"quantities.{qid}"))

    defaults = _obj(d.get("unit_defaults"), '"unit_defaults"')
    for domain, table in defaults.items():
        if domain not in DOMAINS:
            raise _fail(f'unit_defaults: unknown domain "{domain}" (domains are clinical, equipment)')
        out: dict[str, str] = {}
        for uid, qid in _obj(table, f"unit_defaults.{domain}").items():
            if not isinstance(qid, str) or qid not in r.quantities:
                raise _fail(f'unit_defaults.{domain}: unknown quantity "{show(qid)}"')
            if uid not in r.quantities[qid].units:
                raise _fail(f'unit_defaults.{domain}: quantity "{qid}" does not take unit "{uid}"')
            out[uid] = qid
        r.unit_defaults[domain] = out

    bp = _obj(d.get("blood_pressure"), '"blood_pressure"')
    r.bp_words = _texts(bp.get("words"), "blood_pressure.words")
    for key in ("systolic", "diastolic"):
        if not isinstance(bp.get(key), str) or bp[key] not in r.quantities:
            raise _fail(f'blood_pressure.{key}: unknown quantity "{show(bp.get(key))}"')
    r.bp_systolic, r.bp_diastolic = bp["systolic"], bp["diastolic"]
    r.bp_unit = _text(bp.get("unit"), "blood_pressure.unit")
    for key in ("systolic", "diastolic"):
        if r.bp_unit not in r.quantities[bp[key]].units:
            raise _fail(f'blood_pressure.unit: quantity "{bp[key]}" does not take unit "{r.bp_unit}"')
    r.bp_form_quantity = _text(bp.get("form_quantity"), "blood_pressure.form_quantity")
    r.hour_words = _texts(d.get("hour_words"), '"hour_words"')
    r.not_after_bare_number = _texts(d.get("not_after_bare_number"), '"not_after_bare_number"')

    for cid, c in _obj(d.get("asset_classes"), '"asset_classes"').items():
        c = _obj(c, f"asset_classes.{cid}")
        r.asset_classes[cid] = (_text(c.get("label"), f"asset_classes.{cid}.label"),
                                _texts(c.get("keywords"), f"asset_classes.{cid}.keywords"))
    for aid, a in _obj(d.get("assets"), '"assets"').items():
        a = _obj(a, f"assets.{aid}")
        if not isinstance(a.get("class"), str) or a["class"] not in r.asset_classes:
            raise _fail(f'assets.{aid}: unknown asset class "{show(a.get("class"))}"')
        r.assets[aid] = Asset(aid, a["class"], _text(a.get("label"), f"assets.{aid}.label"),
                              _texts(a.get("aliases"), f"assets.{aid}.aliases"))

    seen: set[str] = set()
    limits = d.get("limits")
    if not isinstance(limits, list):
        raise _fail('"limits" must be a list')
    for i, lim in enumerate(limits):
        r.limits.append(_limit(r, i, _obj(lim, f"limits[{i}]"), seen))
    ids = {lim.id for lim in r.limits}
    for i, lim in enumerate(r.limits):
        for rid in lim.replaces:
            if rid not in ids:
                raise _fail(f'limits[{i}] ({lim.id}): replaces unknown limit "{rid}"')

    phrases = d.get("phrases")
    if not isinstance(phrases, list):
        raise _fail('"phrases" must be a list')
    for i, p in enumerate(phrases):
        r.phrases.append(_phrase_rule(i, _obj(p, f"phrases[{i}]"), seen))

    n = _obj(d.get("negation"), '"negation"')
    window = n.get("window")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise _fail("negation.window must be a whole number from 1")
    chars = n.get("break_chars")
    if not isinstance(chars, str):
        raise _fail("negation.break_chars must be a string")
    r.negation = Negation(_texts(n.get("before"), "negation.before"), _texts(n.get("after"), "negation.after"),
                          window, chars, _texts(n.get("break_words"), "negation.break_words"))

    lists = _obj(d.get("allow_lists"), '"allow_lists"')
    for name in ALLOW_LISTS:
        r.allow_lists[name] = _texts(lists.get(name), f"allow_lists.{name}")
    r.diagnosis_phrases = _texts(d.get("diagnosis_phrases"), '"diagnosis_phrases"')
    texts = _obj(d.get("texts"), '"texts"')
    for name, allowed in TEXTS.items():
        r.texts[name] = _template(_text(texts.get(name), f"texts.{name}"), allowed, f"texts.{name}")


def _quantity(r: Rules, qid: str, q: dict[str, Any]) -> Quantity:
    where = f"quantities.{qid}"
    label = _text(q.get("label"), f"{where}.label")
    domain = q.get("domain")
    if domain not in DOMAINS:
        raise _fail(f'{where}.domain must be "clinical" or "equipment"')
    units: dict[str, tuple[float, float]] = {}
    for uid, conv in _obj(q.get("units"), f"{where}.units").items():
        if uid not in r.units:
            raise _fail(f'{where}.units: unknown unit "{uid}" (not in "units")')
        if isinstance(conv, dict):
            factor = _num(conv.get("factor"), f"{where}.units.{uid}.factor")
            offset = _num(conv.get("offset", 0), f"{where}.units.{uid}.offset")
        else:
            factor, offset = _num(conv, f"{where}.units.{uid}"), 0.0
        if factor <= 0:
            raise _fail(f"{where}.units.{uid}: the factor must be above 0")
        units[uid] = (factor, offset)
    canonical = q.get("canonical_unit")
    if not isinstance(canonical, str) or units.get(canonical) != (1.0, 0.0):
        raise _fail(f'{where}: canonical_unit "{show(canonical)}" must be one of its units, with factor 1 and offset 0')
    default = q.get("default_unit")
    if default is not None and (not isinstance(default, str) or default not in units):
        raise _fail(f'{where}.default_unit: "{show(default)}" is not one of its units')
    bare: list[tuple[float | None, str]] = []
    entries = q.get("bare_units", [])
    for entry in entries if isinstance(entries, list) else [None]:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], str) or entry[1] not in units \
                or (entry[0] is not None and not _is_num(entry[0])):
            raise _fail(f"{where}.bare_units: each entry must be [max or null, one of its units]")
        bare.append((None if entry[0] is None else float(entry[0]), entry[1]))
    p = q.get("plausible")
    if not isinstance(p, list) or len(p) != 2 or not all(_is_num(x) for x in p) or not p[0] < p[1]:
        raise _fail(f"{where}.plausible must be [low, high] with low < high")
    return Quantity(qid, label, domain, canonical, units, default, tuple(bare), (float(p[0]), float(p[1])),
                    _texts(q.get("words"), f"{where}.words"), _opt_texts(q, "unit_words", where))


def _limit(r: Rules, i: int, d: dict[str, Any], seen: set[str]) -> Limit:
    lid = _text(d.get("id"), f"limits[{i}].id")
    where = f"limits[{i}] ({lid})"
    if lid in seen:
        raise _fail(f'duplicate id "{lid}"')
    seen.add(lid)
    qid = d.get("quantity")
    if not isinstance(qid, str) or qid not in r.quantities:
        raise _fail(f'{where}: unknown quantity "{show(qid)}"')
    q = r.quantities[qid]
    op = d.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise _fail(f"{where}: op must be one of {', '.join(OPS)}")
    values = _obj(d.get("limits"), f"{where}.limits")
    if not values:
        raise _fail(f"{where}.limits must name at least one unit")
    for uid, v in values.items():
        if uid not in q.units:
            raise _fail(f'{where}: unit "{uid}" is not one {qid} takes ({", ".join(q.units)})')
        if op == "outside":
            if not isinstance(v, list) or len(v) != 2 or not all(_is_num(x) for x in v) or not v[0] < v[1]:
                raise _fail(f"{where}: limits.{uid} must be [low, high] with low < high")
        else:
            _num(v, f"{where}: limits.{uid}")
    cls, asset = d.get("asset_class"), d.get("asset")
    if cls is not None and (not isinstance(cls, str) or cls not in r.asset_classes):
        raise _fail(f'{where}: unknown asset class "{show(cls)}"')
    if asset is not None and (not isinstance(asset, str) or asset not in r.assets):
        raise _fail(f'{where}: unknown asset "{show(asset)}"')
    message = d.get("message", "{label} {value} {op} {limit}")
    if not isinstance(message, str):
        raise _fail(f"{where}.message must be a string")
    _template(message, LIMIT_PLACEHOLDERS, where)
    return Limit(lid, qid, op, values, _kinds(d, where), cls, asset, _opt_texts(d, "replaces", where), message)


def _phrase_rule(i: int, d: dict[str, Any], seen: set[str]) -> PhraseRule:
    pid = _text(d.get("id"), f"phrases[{i}].id")
    where = f"phrases[{i}] ({pid})"
    if pid in seen:
        raise _fail(f'duplicate id "{pid}"')
    seen.add(pid)
    label = _text(d.get("label"), f"{where}.label")
    phrases = _texts(d.get("phrases"), f"{where}.phrases")
    excepts = _opt_texts(d, "except", where)
    message = d.get("message", "danger sign: {label}")
    if not isinstance(message, str):
        raise _fail(f"{where}.message must be a string")
    _template(message, PHRASE_PLACEHOLDERS, where)
    return PhraseRule(pid, label, _kinds(d, where), phrases, excepts, message, patterns.phrase_regex(phrases),
                      patterns.phrase_regex(excepts) if excepts else None)


# ---- loading ----

def _parse(raw: Any, what: str) -> tuple[Any, str | None]:
    """(parsed JSON, sha256 of its bytes or None) from bytes, JSON text, a path or an already parsed object."""
    if isinstance(raw, Path) or (isinstance(raw, str) and not raw.lstrip().startswith("{")):
        try:
            raw = Path(raw).read_bytes()
        except OSError as e:
            raise RulesError(f"{what}: cannot read {raw}: {e.strerror or e}") from None
    if isinstance(raw, str):
        raw = raw.encode()
    if isinstance(raw, bytes | bytearray):
        try:
            return json.loads(bytes(raw).decode("utf-8"), parse_constant=_no_constant), \
                hashlib.sha256(raw).hexdigest()
        except (ValueError, RecursionError):
            raise RulesError(f"{what}: not valid JSON") from None
    return copy.deepcopy(raw), None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_rules(data_or_path: Any = DEFAULT_RULES) -> Rules:
    """A rules file from a path (Path, or a str that is not JSON text), bytes, JSON text or a parsed dict.
    `.sha256` is the hash of the bytes read or given (of the UTF-8 text for str), None for a dict."""
    data, sha = _parse(data_or_path, "rules")
    return Rules(check_header(data, "rules", FORMAT, VERSION), sha)


@dataclass(frozen=True)
class Task:
    kind: str
    title: str
    system: str
    max_tokens: int
    decisive: str
    escalate_values: tuple[str, ...]
    schema: dict[str, Any]


class Tasks:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        tasks = data.get("tasks")
        if not isinstance(tasks, dict):
            raise RulesError('tasks: "tasks" must be an object')
        self.tasks: dict[str, Task] = {}
        for kind in KINDS:
            t = tasks.get(kind)
            if not isinstance(t, dict):
                raise RulesError(f'tasks: task "{kind}" is missing')
            self.tasks[kind] = _task(kind, t)

    def task(self, kind: str) -> Task:
        if kind not in self.tasks:
            raise RulesError(f'unknown task kind "{show(kind)}": use one of {", ".join(KINDS)}')
        return self.tasks[kind]


def _task(kind: str, t: dict[str, Any]) -> Task:
    where = f"tasks.{kind}"

    def text(key: str) -> str:
        v = t.get(key)
        if not isinstance(v, str) or not v:
            raise RulesError(f"tasks: {where}.{key} must be a non-empty string")
        return v

    mt = t.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int) or not 1 <= mt <= 4096:
        raise RulesError(f"tasks: {where}.max_tokens must be a whole number from 1 to 4096")
    schema = t.get("schema")
    if not isinstance(schema, dict) or schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise RulesError(f"tasks: {where}.schema must be a JSON Schema of type object with properties")
    decisive = text("decisive")
    if decisive not in schema["properties"] or decisive not in schema.get("required", []):
        raise RulesError(f'tasks: {where}.decisive "{decisive}" must be a required property of the schema')
    values = t.get("escalate_values")
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise RulesError(f"tasks: {where}.escalate_values must be a list of strings")
    return Task(kind, text("title"), text("system"), mt, decisive, tuple(values), schema)


def load_tasks(data_or_path: Any = DEFAULT_TASKS) -> Tasks:
    """The tasks file, from the same kinds of input as load_rules."""
    data, _ = _parse(data_or_path, "tasks")
    return Tasks(check_header(data, "tasks", TASKS_FORMAT, TASKS_VERSION))


_default_tasks: Tasks | None = None


def default_tasks() -> Tasks:
    global _default_tasks
    if _default_tasks is None:
        _default_tasks = load_tasks()
    return _default_tasks
