"""schemathesis against the published /openapi.json: generated requests, valid and invalid, never get a 5xx, and
every answer matches the documented status codes, content types and schemas.

The engine is the fake one (the real model would spend seconds per example); everything in front of it (parsing,
validation, queue, formatting) is the server's own. Its context is made too large to overflow, because a limit
counted in tokens cannot be written in a JSON schema and schemathesis checks that schema-valid requests are accepted
(test_validation.py covers context_length_exceeded). For the same reason the structured-output fields are taken out
of generated bodies: whether a schema or tool set can be turned into a grammar, and whether top_logprobs comes with
logprobs, cannot be written in the published schema (test_structured.py covers them with the real engine). The number
of examples is bounded to keep this well under a minute on two cores.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from .conftest import fake_app
from .fake_engine import FakeEngine

EXAMPLES = 80  # per operation and generation mode
STRUCTURED = ("response_format", "tools", "tool_choice", "top_logprobs")

app = fake_app(FakeEngine(context=10**9), max_tokens=16, queue_size=64)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    if isinstance(case.body, dict) and case.meta is not None and case.meta.generation.mode.is_positive:
        for key in STRUCTURED:
            case.body.pop(key, None)
    case.call_and_validate()
