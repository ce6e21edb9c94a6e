"""Field answers: the model suggests, deterministic rules decide.

The rules file (rules.json) and the tasks file (tasks.json) drive everything; app/field/*.js is the same code for
the browser, and tests/field/vectors.json holds the expected outputs both sides must produce. docs/RULES.md
describes the files and the rules of parsing.
"""

from .answers import diagnosis_problems, parse_answer, review, schema_problems, task_request, task_schema
from .evaluate import evaluate
from .numbers import convert, fmt_num, round4, unsupported_numbers
from .readings import detect_asset, parse_readings, readings_from_form
from .rules import (
    DEFAULT_RULES,
    DEFAULT_TASKS,
    KINDS,
    ReadingError,
    Rules,
    RulesError,
    Task,
    Tasks,
    default_tasks,
    load_rules,
    load_tasks,
)

__all__ = [
    "DEFAULT_RULES",
    "DEFAULT_TASKS",
    "KINDS",
    "ReadingError",
    "Rules",
    "RulesError",
    "Task",
    "Tasks",
    "convert",
    "default_tasks",
    "detect_asset",
    "diagnosis_problems",
    "evaluate",
    "fmt_num",
    "load_rules",
    "load_tasks",
    "parse_answer",
    "parse_readings",
    "readings_from_form",
    "review",
    "round4",
    "schema_problems",
    "task_request",
    "task_schema",
    "unsupported_numbers",
]
