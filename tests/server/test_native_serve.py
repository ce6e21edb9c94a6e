"""`fieldllm serve` answers on the native engine by default, with the reference engine's greedy answers.

real_server is `fieldllm serve` started as the user would (conftest.py), so on the native CPU engine; the expected
answers come from the numpy reference engine (model_prep.reference) in this process.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from chats import CHATS, STEPS

from model_prep.reference import load

MODEL = "SmolLM2-135M-Instruct.Q4_1"


def test_the_default_engine_is_native(real_server: str) -> None:
    assert httpx.get(f"{real_server}/healthz", timeout=10).json()["backend"] == "native"


@pytest.mark.slow
def test_greedy_answers_equal_the_reference_engines(real_server: str, smollm2_package: Path) -> None:
    ref = load(smollm2_package, context=512)
    for k, messages in enumerate(CHATS):
        expected = ref.generate(messages, max_tokens=STEPS, temperature=0.0)
        for stream in (False, True):
            body = {"model": MODEL, "messages": messages, "max_tokens": STEPS, "temperature": 0, "stream": stream}
            with httpx.stream("POST", f"{real_server}/v1/chat/completions", json=body, timeout=120) as r:
                assert r.status_code == 200
                raw = r.read().decode()
            if stream:
                events = [json.loads(line[6:]) for line in raw.splitlines()
                          if line.startswith("data: {")]
                text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
                assert events[0]["system_fingerprint"] == "fieldllm-native"
            else:
                answer = json.loads(raw)
                text = answer["choices"][0]["message"]["content"]
                assert answer["usage"]["completion_tokens"] == expected.usage.completion_tokens
                assert answer["system_fingerprint"] == "fieldllm-native"
            assert text == expected.text, f"chat {k}, stream={stream}"
