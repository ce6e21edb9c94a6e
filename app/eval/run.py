"""Run cases through the reference engine and the field rules; the figures docs/EVAL.md reports.

For each case: one greedy answer (the app's own request: app.field.task_request, constrained to the task's schema),
turned into a card by app.field.review; then ``seeds`` sampled answers (temperature ``temperature``, seeds 1..N) for
consistency. The figures:

- schema_valid: greedy answers that finished, parse and fit the task's schema (the grammar makes this 1.0 unless an
  answer is cut); accepted: those the rules also accept as a card (a screening answer that names a disease is
  schema-valid but refused, and the card shows the safe text instead)
- escalation_recall: red-flag cases (escalate: true) whose card escalates, in every run (greedy and seeded)
- rules_recall: the same, from the rules alone (the model's suggestion left out): what holds whatever the model says
- false_escalation: cases that should not escalate whose greedy card does
- consistency: cases whose card makes the same escalation decision in every run; model_consistency: cases whose
  model picks the same decisive value (priority, severity, next step) in every seeded run
- wrong_and_confident: greedy cards whose decision disagrees with the case and whose confidence is "high"
  (model_wrong_and_confident: the model's own suggestion disagrees, with high confidence)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.field import Rules, Tasks, parse_answer, review, schema_problems, task_request, task_schema
from app.field.confidence import decisive_probability
from model_prep.reference import Decoding, Engine
from model_prep.reference.structured import from_request

from .cases import Case


@dataclass(frozen=True)
class EvalOptions:
    seeds: int = 3  # sampled runs per case, for consistency (0: greedy only)
    temperature: float = 0.7  # of the sampled runs


def answer(engine: Engine, case: Case, rules: Rules, tasks: Tasks, temperature: float = 0.0,
           seed: int | None = None) -> dict[str, Any]:
    """One run of one case: the request the app would send, the engine's answer, and the card."""
    req = task_request(case.kind, case.text, [], rules, tasks)
    grammar = from_request(req["response_format"]).grammar
    text: list[str] = []
    tokens: list[dict[str, Any]] = []
    finish, completion_tokens = "length", 0
    started = time.perf_counter()
    for chunk in engine.stream(req["messages"], req["max_tokens"], temperature, None, seed,
                               decoding=Decoding(grammar=grammar, logprobs=True)):
        text.append(chunk.text)
        tokens += [{"token": engine.decode([p.token]), "logprob": p.logprob} for p in chunk.logprobs]
        if chunk.finish_reason:
            finish = chunk.finish_reason
            completion_tokens = chunk.usage.completion_tokens if chunk.usage else 0
    content = "".join(text)
    task = tasks.task(case.kind)
    p = decisive_probability(content, tokens, task.decisive)
    card = review(case.kind, case.text, [], {"content": content, "finish_reason": finish,
                                             "decisive_probability": p}, rules, tasks)
    decisive = card["answer"].get(task.decisive) if card["answer"] else None
    value, why = parse_answer(content)
    schema_valid = finish == "stop" and why is None and not schema_problems(task_schema(case.kind, rules, tasks), value)
    return {"content": content, "finish_reason": finish, "card": card, "decisive": decisive,
            "schema_valid": schema_valid, "parsed": value if schema_valid else None,
            "decisive_probability": p, "completion_tokens": completion_tokens,
            "seconds": time.perf_counter() - started, "seed": seed, "temperature": temperature}


def run_eval(engine: Engine, cases: list[Case], rules: Rules, tasks: Tasks, options: EvalOptions = EvalOptions(),
             progress: Callable[[int, int, Case], None] | None = None) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    for i, case in enumerate(cases):
        if progress:
            progress(i, len(cases), case)
        greedy = answer(engine, case, rules, tasks)
        sampled = [answer(engine, case, rules, tasks, options.temperature, s) for s in range(1, options.seeds + 1)]
        results.append(_case_result(case, greedy, sampled, tasks))
    return {"summary": summarize(results, options), "cases": results,
            "seconds": round(time.perf_counter() - started, 1)}


def _case_result(case: Case, greedy: dict[str, Any], sampled: list[dict[str, Any]], tasks: Tasks) -> dict[str, Any]:
    card = greedy["card"]
    runs = [greedy, *sampled]
    escalations = [r["card"]["escalate"] for r in runs]
    model_values = [r["decisive"] for r in sampled]
    parsed = greedy["parsed"]  # the schema-valid answer, accepted by the rules or not
    missing = [f for f in case.must_have if not isinstance(parsed, dict) or f not in parsed]
    suggests = card["model_suggests_escalation"]
    return {
        "id": case.id, "kind": case.kind, "expected_escalate": case.escalate,
        "escalate": card["escalate"], "status": card["status"],
        "schema_valid": greedy["schema_valid"] and not missing, "accepted": card["valid"],
        "missing_fields": missing, "problems": card["problems"],
        "rules_escalate": bool(card["fired"]), "model_suggests_escalation": suggests,
        "fired": [f["message"] for f in card["fired"]],
        "confidence": card["confidence"], "decisive": greedy["decisive"],
        "decisive_probability": greedy["decisive_probability"],
        "escalate_every_run": all(escalations), "escalate_any_run": any(escalations),
        "consistent": len(set(escalations)) == 1,
        "model_consistent": len(set(map(str, model_values))) <= 1 if model_values else None,
        "wrong_and_confident": card["escalate"] != case.escalate and card["confidence"] == "high",
        "model_wrong_and_confident": card["valid"] and suggests != case.escalate and card["confidence"] == "high",
        "answer": greedy["content"], "finish_reason": greedy["finish_reason"],
        "completion_tokens": sum(r["completion_tokens"] for r in runs),
        "seconds": round(sum(r["seconds"] for r in runs), 2),
    }


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def summarize(results: list[dict[str, Any]], options: EvalOptions) -> dict[str, Any]:
    red = [r for r in results if r["expected_escalate"]]
    calm = [r for r in results if not r["expected_escalate"]]
    sampled = options.seeds > 0
    tokens = sum(r["completion_tokens"] for r in results)
    seconds = sum(r["seconds"] for r in results)
    return {
        "cases": len(results), "red_flag_cases": len(red), "seeds": options.seeds,
        "temperature": options.temperature if sampled else None,
        "schema_valid": _rate(sum(r["schema_valid"] for r in results), len(results)),
        "accepted": _rate(sum(r["accepted"] for r in results), len(results)),
        "escalation_recall": _rate(sum(r["escalate_every_run"] for r in red), len(red)),
        "escalation_recall_greedy": _rate(sum(r["escalate"] for r in red), len(red)),
        "rules_recall": _rate(sum(r["rules_escalate"] for r in red), len(red)),
        "false_escalation": _rate(sum(r["escalate"] for r in calm), len(calm)),
        "consistency": _rate(sum(r["consistent"] for r in results), len(results)),
        "model_consistency": _rate(sum(bool(r["model_consistent"]) for r in results), len(results))
        if sampled else None,
        "wrong_and_confident": sum(r["wrong_and_confident"] for r in results),
        "model_wrong_and_confident": sum(r["model_wrong_and_confident"] for r in results),
        "missed": [r["id"] for r in red if not r["escalate_every_run"]],
        "false_escalations": [r["id"] for r in calm if r["escalate"]],
        "invalid": [r["id"] for r in results if not r["schema_valid"]],
        "refused": [r["id"] for r in results if r["schema_valid"] and not r["accepted"]],
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
    }
