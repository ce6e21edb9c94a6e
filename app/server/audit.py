"""`fieldllm serve --audit FILE`: one JSON line per structured answer (a response_format or tools request).

A record holds what is needed to say later why a card said what it said: time, model and package, engine, the
sampling settings and seed, the grammar's hash, the raw output, finish reason, usage and timings; and, for requests
that name a field task (``metadata.fieldllm_task``: fault, triage or screening, as the app's screens send), the
readings parsed from the user's text and the rules' verdict on the answer (app.field.review). The browser keeps the
same record in IndexedDB (app/ui/audit.js); nothing is sent anywhere.

Lines are appended with one write each on a file opened for appending, so concurrent answers never interleave.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .errors import log
from .parse import Chat

TASK_KEY = "fieldllm_task"


class Audit:
    def __init__(self, path: Path, engine: str, model: str, package_id: str | None):
        self.path = path
        self.engine = engine
        self.model = model
        self.package_id = package_id
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass  # fail at start-up, not at the first answer, if the file cannot be written
        self._rules: Any = None

    def rules(self) -> Any:
        if self._rules is None:
            from app.field import load_rules

            self._rules = load_rules()
        return self._rules

    def record(self, chat: Chat, content: str | None, tool_calls: list[dict[str, Any]] | None, finish: str,
               usage: dict[str, Any] | None, timings: dict[str, Any] | None,
               model: str | None = None) -> dict[str, Any] | None:
        """Append the record of one finished answer; returns it (None for an unstructured request)."""
        if chat.structure.grammar is None:
            return None
        s = chat.sampling
        d = s.decoding
        rec: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "engine": self.engine, "model": model or self.model, "package_id": self.package_id,
            "sampling": {"temperature": s.temperature, "top_p": s.top_p, "top_k": d.top_k, "min_p": d.min_p,
                         "frequency_penalty": d.frequency_penalty, "presence_penalty": d.presence_penalty,
                         "max_tokens": s.max_tokens, "seed": s.seed},
            "grammar": {"kind": chat.structure.grammar.kind, "sha256": chat.structure.grammar.key},
            "output": content, "tool_calls": tool_calls, "finish_reason": finish, "usage": usage,
            "timings": timings,
        }
        task = (chat.request.metadata or {}).get(TASK_KEY)
        if task in ("fault", "triage", "screening"):
            rec.update(self._verdict(task, chat, content, finish))
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
            except OSError as e:  # the answer is already on its way: say so in the log, loudly
                log.error("could not append to the audit file %s: %s", self.path, e)
        return rec

    def _verdict(self, task: str, chat: Chat, content: str | None, finish: str) -> dict[str, Any]:
        from app.field import review

        rules = self.rules()
        text = next((m["content"] for m in reversed(chat.messages) if m["role"] == "user"), "")
        card = review(task, text, [], {"content": content or "", "finish_reason": finish,
                                       "decisive_probability": None}, rules)
        return {"task": task, "rules_version": rules.rules_version, "readings": card["readings"],
                "verdict": {k: card[k] for k in ("status", "escalate", "fired", "implausible", "valid", "problems",
                                                 "cut", "unsupported_numbers", "model_suggests_escalation")}}
