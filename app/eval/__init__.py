"""`fieldllm eval`: run a case set through an engine and the field rules, and report what matters for trust
(schema-valid rate, escalation recall, false escalations, consistency over seeds, wrong-and-confident answers)."""

from .cases import Case, load_cases
from .run import EvalOptions, run_eval

__all__ = ["Case", "EvalOptions", "load_cases", "run_eval"]
