"""`fieldllm eval`'s front: load, run with progress on stderr, print one line a figure (or JSON), exit status."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from threadpoolctl import threadpool_limits

from model_prep.errors import InputError

from .cases import load_cases
from .run import EvalOptions, run_eval

FIGURES = ("schema_valid", "accepted", "escalation_recall", "escalation_recall_greedy", "rules_recall",
           "false_escalation", "consistency", "model_consistency", "wrong_and_confident", "model_wrong_and_confident",
           "tokens_per_second")


def run_command(args: argparse.Namespace) -> int:
    from app.field import default_tasks, load_rules
    from model_prep.reference import load

    if args.seeds < 0 or (args.limit is not None and args.limit < 1):
        raise InputError("--seeds must be >= 0 and --limit >= 1")
    cases = load_cases(args.cases)[: args.limit]
    rules = load_rules(args.rules) if args.rules else load_rules()
    engine = load(args.package)

    def progress(i: int, n: int, case: Any) -> None:
        print(f"\r[{i + 1}/{n}] {case.id:<28}", end="", file=sys.stderr, flush=True)

    # one BLAS thread: decoding is a matrix-vector product per token, where OpenBLAS's threads cost more than they
    # give on a shared 2-core machine (measured: 12.4 against 3.1 tokens/s, docs/EVAL.md)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        report = run_eval(engine, cases, rules, default_tasks(), EvalOptions(args.seeds, args.temperature),
                          progress)
    print(file=sys.stderr)
    report["model"] = engine.name
    report["package_id"] = engine.package_id
    report["rules_version"] = rules.rules_version
    s = report["summary"]
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(f"model {engine.name}, rules {rules.rules_version}, {s['cases']} cases ({s['red_flag_cases']} red "
              f"flags), {s['seeds']} seeds, {report['seconds']} s")
        for name in FIGURES:
            print(f"{name:<26} {s[name]}")
        for name in ("missed", "false_escalations", "invalid", "refused"):
            if s[name]:
                print(f"{name:<26} {', '.join(s[name])}")
    ok = s["schema_valid"] == 1.0 and (s["escalation_recall"] in (1.0, None))
    return 0 if ok or not args.require else 1
