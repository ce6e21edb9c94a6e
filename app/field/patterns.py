"""The regular expressions the rules compile to, and the matching helpers (negation, exceptions, assets).

The same pattern source is compiled by Python's `re` and by JavaScript's RegExp (flags "dgu"), so it uses only what
both read the same way: ASCII classes instead of \\w, \\b, \\d and \\s, fixed-width lookbehind, literal text escaped
by `escape`, and no case-insensitive flag (the two disagree on which letters fold together: Python's IGNORECASE lets
[A-Za-z] match "İ" and "ı", JS's does not); each letter of a literal is written as its class of cases instead ("[hH]").
Offsets are in code points on both sides (app/field/patterns.js converts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .rules import Rules

WS = "[ \\t\\u00a0]"  # blanks within a line
FLEX = "[ \\t\\u00a0:=\\-]*"  # where a word list has a space or hyphen: "heart rate", "heart-rate", "heartrate", "P-3"
LEFT = "(?<![A-Za-z0-9])"
RIGHT = "(?![A-Za-z0-9])"
RIGHT_LETTER = "(?![A-Za-z])"  # after a quantity word: "HR38" is HR 38
NUMBER = "[0-9]{1,3}(?:,[0-9]{3})+(?:\\.[0-9]{1,6})?|[0-9]{1,7}(?:\\.[0-9]{1,6})?"  # "1,200.5" or "40.6"; no "40,6"
NUMBER_END = "(?![0-9]|[.,][0-9])"
SIGN = "(?:(?<![A-Za-z0-9.,\\-])(-))?"
FILLERS = ("is", "was", "are", "were", "of", "at", "now", "reads", "reading", "measured", "around", "about", "approx.",
           "approx", "approximately", "down to", "up to", "dropped to", "fell to", "rose to", "increased to",
           "decreased to", "to")
_SYNTAX = set("\\^$.|?*+()[]{}/")
_SPLIT = re.compile("[ \\-]+")
_SEPARATORS = re.compile("[ \\t\\u00a0:=\\-]")
_ALNUM = re.compile("[A-Za-z0-9]")
_WORDS = re.compile("[a-z0-9']+")


def escape(text: str) -> str:
    """text as a pattern that matches it in any case of its letters."""
    out = []
    for c in text:
        cases = sorted({x for x in (c, c.lower(), c.upper()) if len(x) == 1})
        out.append("\\" + c if c in _SYNTAX else c if len(cases) == 1 else "[" + "".join(cases) + "]")
    return "".join(out)


def key(text: str) -> str:
    """A word as looked up: lower case, without spaces, hyphens, colons and equals signs."""
    return _SEPARATORS.sub("", text.lower())


def exact_key(text: str) -> str:
    return _SEPARATORS.sub("", text)


def _cp_len(text: str) -> int:
    return len(text)


def alternation(items: tuple[str, ...] | list[str], left: str, right: str) -> str:
    """One regex alternative per item, longest first (stable), each with the boundaries its ends need."""
    out = []
    for item in sorted(items, key=lambda s: -_cp_len(s)):
        body = FLEX.join(escape(p) for p in _SPLIT.split(item) if p)
        before = left if _ALNUM.match(item[0]) else ""
        after = right if _ALNUM.match(item[-1]) else ""
        out.append(before + body + after)
    return "(?:" + "|".join(out) + ")"


def compile_source(source: str) -> re.Pattern[str]:
    return re.compile(source)


def phrase_regex(phrases: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    return compile_source(alternation(phrases, LEFT, RIGHT))


def _separator() -> str:
    fillers = alternation(list(FILLERS), "", "")
    return f"{WS}*(?:[:=~]{WS}*)?(?:{fillers}{WS}+){{0,2}}"


@dataclass(frozen=True)
class Span:
    start: int
    end: int


class Compiled:
    """Everything matched in text, compiled once per rules file."""

    def __init__(self, rules: Rules) -> None:
        self.unit_by_alias: dict[str, str] = {}
        self.unit_by_exact: dict[str, str] = {}
        aliases: list[str] = []
        for unit in rules.units.values():
            for a in unit.aliases:
                self.unit_by_alias.setdefault(key(a), unit.id)
                aliases.append(a)
            for a in unit.exact:
                self.unit_by_exact.setdefault(exact_key(a), unit.id)
                aliases.append(a)
        units = alternation(aliases, "", RIGHT)

        self.words: dict[str, list[tuple[str, bool]]] = {}  # key -> [(quantity, needs a unit)], in file order
        words: list[str] = []
        for q in rules.quantities.values():
            for w, needs_unit in [*((w, False) for w in q.words), *((w, True) for w in q.unit_words)]:
                self.words.setdefault(key(w), []).append((q.id, needs_unit))
                words.append(w)
        word_alt = alternation(words, LEFT, RIGHT_LETTER)
        sep = _separator()
        self.word = compile_source(f"({word_alt}){sep}{SIGN}(?<![0-9.,])({NUMBER}){NUMBER_END}"
                                   f"(?:{WS}*({units}))?")
        self.unit = compile_source(f"{SIGN}(?<![A-Za-z0-9.,])({NUMBER}){NUMBER_END}{WS}*({units})"
                                   f"(?:{WS}+(?:{escape('of')}{WS}+)?({word_alt}))?")
        bp_unit = alternation(list(rules.units[rules.bp_unit].aliases), "", RIGHT)
        pair = f"([0-9]{{2,3}}){WS}*/{WS}*([0-9]{{2,3}}){NUMBER_END}"
        self.bp = compile_source(f"({alternation(rules.bp_words, LEFT, RIGHT)}){sep}(?<![0-9.,]){pair}"
                                 f"(?:{WS}*({bp_unit}))?")
        self.bp_bare = compile_source(f"(?<![A-Za-z0-9.,/]){pair}{WS}*({bp_unit})")
        self.hour_words = {key(w) for w in rules.hour_words}
        # a word that, after a number given without a unit, says it is no reading ("fever of 3 days")
        self.not_a_reading = compile_source(f"{WS}*{alternation(rules.not_after_bare_number, '', RIGHT)}")

        self.asset_by_key: dict[str, str] = {}
        names: list[str] = []
        for asset in rules.assets.values():
            for a in (asset.id, *asset.aliases):
                self.asset_by_key.setdefault(key(a), asset.id)
                names.append(a)
        self.asset = compile_source(alternation(names, LEFT, RIGHT)) if names else None
        self.class_by_key: dict[str, str] = {}
        keywords: list[str] = []
        for cid, (_label, kws) in rules.asset_classes.items():
            for k in (cid, *kws):
                self.class_by_key.setdefault(key(k), cid)
                keywords.append(k)
        self.asset_class = compile_source(alternation(keywords, LEFT, RIGHT)) if keywords else None

        neg = rules.negation
        self.neg_before = [" " + " ".join(_WORDS.findall(c.lower())) + " " for c in neg.before]
        self.neg_after = [" " + " ".join(_WORDS.findall(c.lower())) + " " for c in neg.after]
        self.neg_window = neg.window
        self.break_chars = neg.break_chars
        self.break_words = {w.lower() for w in neg.break_words}
        self.diagnosis = [(p, phrase_regex([p])) for p in rules.diagnosis_phrases]

    def negated(self, text: str, start: int, end: int) -> bool:
        """Whether a match at text[start:end] is negated within its clause: a cue ("no", "denies", ...) among the
        `window` words before it, or ("denied", "absent", ...) among those after it."""
        before = text[:start]
        cut = max((before.rfind(c) for c in self.break_chars), default=-1)
        words = _WORDS.findall(before[cut + 1:].lower())
        for i in range(len(words) - 1, -1, -1):
            if words[i] in self.break_words:
                words = words[i + 1:]
                break
        window = " " + " ".join(words[-self.neg_window:]) + " "
        if any(c in window for c in self.neg_before):
            return True
        after = text[end:]
        cuts = [i for i in (after.find(c) for c in self.break_chars) if i >= 0]
        words = _WORDS.findall(after[:min(cuts)].lower() if cuts else after.lower())
        for i, w in enumerate(words):
            if w in self.break_words:
                words = words[:i]
                break
        window = " " + " ".join(words[:self.neg_window]) + " "
        return any(c in window for c in self.neg_after)


def find_phrase(pattern: re.Pattern[str], excepts: re.Pattern[str] | None, compiled: Compiled,
                text: str) -> Span | None:
    """The first match of `pattern` in text that no exception covers and that is not negated."""
    covered = [Span(m.start(), m.end()) for m in excepts.finditer(text)] if excepts else []
    for m in pattern.finditer(text):
        if any(c.start <= m.start() and m.end() <= c.end for c in covered):
            continue
        if not compiled.negated(text, m.start(), m.end()):
            return Span(m.start(), m.end())
    return None
