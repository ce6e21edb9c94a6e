"""The field answers in the shell: the rules file (checked, versioned, hashed), the tasks file and the JS modules.

dist/app/field/ holds the same files as the repository's app/field/ (the screens import the modules by relative
path), with rules.json replaced by the file given to `fieldllm build --rules FILE`. All of them are shell files, so
the service worker pre-caches them with their sha256; build-info.json records the rules' version and hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import RulesFileError
from .files import walk_files

FOLDER = "app/field"
RULES_URL = f"{FOLDER}/rules.json"
TASKS_URL = f"{FOLDER}/tasks.json"


@dataclass(frozen=True)
class RulesInfo:
    url: str  # in dist/
    rules_version: str
    sha256: str
    size: int

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "rules_version": self.rules_version, "sha256": self.sha256, "size": self.size}


def shell_sources(field_dir: Path, rules: Path) -> dict[str, Path]:
    """dist path -> source, for the field modules, the tasks file and the rules file to ship."""
    out = {f"{FOLDER}/{p.relative_to(field_dir).as_posix()}": p for p in walk_files(field_dir, (".js",))}
    out[TASKS_URL] = field_dir / "tasks.json"
    out[RULES_URL] = rules
    return out


def check(rules: Path, tasks: Path) -> RulesInfo:
    """Load the rules and tasks files as the app will, and every task schema they make; one line if they fail."""
    from app.field import KINDS, RulesError, load_rules, load_tasks, task_schema

    try:
        data = rules.read_bytes()
    except OSError as e:
        raise RulesFileError(f"--rules {rules}: cannot read it ({e.strerror or e})") from None
    try:
        checked = load_rules(data)
        loaded = load_tasks(tasks.read_bytes())
        for kind in KINDS:
            task_schema(kind, checked, loaded)
    except RulesError as e:
        raise RulesFileError(f"{rules}: {e}") from None
    assert checked.sha256 is not None
    return RulesInfo(RULES_URL, checked.rules_version, checked.sha256, len(data))
