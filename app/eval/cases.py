"""Case files: ``{"cases": [{"kind": "fault" | "triage" | "screening", "text": "...", "escalate": bool}, ...]}``.

Other fields are optional: ``id`` (default "case-N"), ``must_have`` (answer fields that must be present; default
the task schema's required fields), ``red_flag``, ``note`` (kept for the report). ``format``/``version`` at the top,
when present, must be ``fieldllm-eval-cases`` / 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_prep.errors import InputError

DEFAULT_CASES = Path(__file__).resolve().parents[2] / "tests" / "eval" / "cases.json"
KINDS = ("fault", "triage", "screening")


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    text: str
    escalate: bool
    must_have: tuple[str, ...] = ()
    red_flag: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_cases(path: Path | None = None) -> list[Case]:
    path = path or DEFAULT_CASES
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such case file; give --cases FILE") from None
    except ValueError as e:
        raise InputError(f"{path}: not JSON ({e}); fix the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list) or not data["cases"]:
        raise InputError(f'{path}: expected {{"cases": [{{"kind", "text", "escalate"}}, ...]}} with at least one case')
    if "format" in data and (data["format"], data.get("version")) != ("fieldllm-eval-cases", 1):
        raise InputError(f"{path}: format {data['format']!r} version {data.get('version')!r}; this reader supports "
                         "fieldllm-eval-cases version 1")
    out: list[Case] = []
    seen: set[str] = set()
    for i, c in enumerate(data["cases"]):
        where = f"{path}: case {i}"
        if not isinstance(c, dict):
            raise InputError(f"{where} is not an object")
        if c.get("kind") not in KINDS:
            raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}, got {c.get('kind')!r}")
        if not isinstance(c.get("text"), str) or not c["text"].strip():
            raise InputError(f"{where}: text must be a non-empty string")
        if not isinstance(c.get("escalate"), bool):
            raise InputError(f"{where}: escalate must be true or false")
        cid = str(c.get("id") or f"case-{i}")
        if cid in seen:
            raise InputError(f"{where}: the id {cid!r} is used twice")
        seen.add(cid)
        must = c.get("must_have") or []
        if not isinstance(must, list) or not all(isinstance(m, str) for m in must):
            raise InputError(f"{where}: must_have must be a list of field names")
        known = {"id", "kind", "text", "escalate", "must_have", "red_flag"}
        out.append(Case(cid, c["kind"], c["text"], c["escalate"], tuple(must), c.get("red_flag"),
                        {k: v for k, v in c.items() if k not in known}))
    return out
