"""The official openai client against `fieldllm serve` on the real default model, and through an --upstream proxy.

The answers must be the reference engine's own, token for token (greedy).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from app.server.app import create_app
from app.server.upstream import UpstreamBackend
from model_prep.reference import Completion, load

from .conftest import FRANCE, live_server, make_settings


@pytest.fixture(scope="module")
def expected(smollm2_package: Path) -> Completion:
    return load(smollm2_package, context=512).generate(FRANCE, temperature=0.0)


@pytest.fixture(scope="module")
def proxy(real_server: str) -> Iterator[str]:
    """A second server whose backend is the first one (as it would front vLLM or llama.cpp's server)."""
    settings = make_settings(upstream=f"{real_server}/v1")
    with live_server(create_app(settings, UpstreamBackend(settings))) as url:
        yield url


def _client(url: str) -> OpenAI:
    return OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=60)


@pytest.fixture(params=["direct", "proxied"])
def server(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("real_server" if request.param == "direct" else "proxy"))


def test_models_lists_the_package(server: str) -> None:
    assert [m.id for m in _client(server).models.list()] == ["SmolLM2-135M-Instruct.Q4_1"]


def test_greedy_answer_equals_the_reference_engine(server: str, expected: Completion) -> None:
    assert expected.text == "The capital of France is Paris."
    done = _client(server).chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=FRANCE,
                                                   temperature=0)
    assert done.choices[0].message.content == expected.text
    assert done.choices[0].finish_reason == expected.finish_reason == "stop"
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (expected.usage.prompt_tokens,
                                                                        expected.usage.completion_tokens)


def test_streamed_answer_equals_the_reference_engine(server: str, expected: Completion) -> None:
    stream = _client(server).chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=FRANCE,
                                                     temperature=0, stream=True,
                                                     stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected.text
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) >= 5  # streamed, not one lump
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert usage.completion_tokens == expected.usage.completion_tokens


def test_seeded_sampling_is_reproducible(real_server: str) -> None:
    def ask() -> str | None:
        return _client(real_server).chat.completions.create(
            model="SmolLM2-135M-Instruct.Q4_1", messages=FRANCE, temperature=1.0, top_p=0.9,
            seed=7, max_tokens=6).choices[0].message.content

    assert ask() == ask()


def test_stop_and_max_tokens(real_server: str) -> None:
    client = _client(real_server)
    stopped = client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=FRANCE,
                                             temperature=0, stop=[" Paris"])
    assert (stopped.choices[0].message.content, stopped.choices[0].finish_reason) == ("The capital of France is",
                                                                                      "stop")
    short = client.chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=FRANCE,
                                           temperature=0, max_completion_tokens=3)
    assert (short.choices[0].message.content, short.choices[0].finish_reason) == ("The capital of", "length")
    assert short.usage is not None and short.usage.completion_tokens == 3


def test_bad_request_raises_the_clients_error(server: str) -> None:
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        _client(server).chat.completions.create(model="SmolLM2-135M-Instruct.Q4_1", messages=FRANCE,
                                                n=2)
    assert e.value.code == "unsupported_parameter" and e.value.param == "n"
    with pytest.raises(openai.NotFoundError):
        _client(server).chat.completions.create(model="gpt-4o", messages=FRANCE)


# --- structured output (issue 9): response_format and tools, streamed and not, direct and through --upstream ---

MODEL = "SmolLM2-135M-Instruct.Q4_1"
CARD = {"type": "object", "additionalProperties": False, "required": ["cause", "severity"],
        "properties": {"cause": {"type": "string", "maxLength": 40},
                       "severity": {"enum": ["low", "medium", "high", "critical"]}}}
PUMP = [{"role": "user", "content": "Mud pump P-3 discharge pressure drifting high since 0200. Answer in JSON."}]
GAUGE = {"type": "function", "function": {"name": "read_gauge", "description": "Read a gauge on an asset",
                                          "parameters": {"type": "object", "additionalProperties": False,
                                                         "required": ["asset"],
                                                         "properties": {"asset": {"type": "string", "maxLength": 12}}}}}
TICKET = {"type": "function", "function": {"name": "open_ticket", "parameters": {
    "type": "object", "additionalProperties": False, "required": ["priority"],
    "properties": {"priority": {"enum": ["low", "high"]}}}}}


def _streamed(stream: object) -> tuple[str, list[dict[str, str]], str | None]:
    text, calls, finish = "", [], None
    for part in stream:  # type: ignore[attr-defined]
        if not part.choices:
            continue
        delta = part.choices[0].delta
        text += delta.content or ""
        for call in delta.tool_calls or []:
            calls.append({"name": call.function.name, "arguments": call.function.arguments})
        finish = part.choices[0].finish_reason or finish
    return text, calls, finish


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_answer_validates_and_equals_the_reference(server: str, smollm2_package: Path,
                                                                stream: bool) -> None:
    import json

    import jsonschema

    from model_prep.reference import Decoding
    from model_prep.reference.structured import from_request

    fmt = {"type": "json_schema", "json_schema": {"name": "card", "schema": CARD, "strict": True}}
    want = load(smollm2_package, context=512).generate(
        PUMP, temperature=0.0, decoding=Decoding(grammar=from_request(fmt).grammar))
    client = _client(server)
    if stream:
        text, _, finish = _streamed(client.chat.completions.create(model=MODEL, messages=PUMP, temperature=0,
                                                                   response_format=fmt, stream=True))
    else:
        done = client.chat.completions.create(model=MODEL, messages=PUMP, temperature=0, response_format=fmt)
        text, finish = done.choices[0].message.content or "", done.choices[0].finish_reason
    assert finish == "stop"
    jsonschema.validate(json.loads(text), CARD)
    assert text == want.text


def test_json_object_answer_is_an_object(server: str) -> None:
    import json

    done = _client(server).chat.completions.create(model=MODEL, messages=PUMP, temperature=0, max_tokens=200,
                                                   response_format={"type": "json_object"})
    if done.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(done.choices[0].message.content or ""), dict)
    else:  # a cut answer says so; it is never passed off as complete
        assert done.choices[0].finish_reason == "length"


@pytest.mark.parametrize("choice", ["required", "named", "auto"])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls(server: str, choice: str, stream: bool) -> None:
    import json

    import jsonschema

    tool_choice: object = {"type": "function", "function": {"name": "open_ticket"}} if choice == "named" else choice
    ask = [{"role": "user", "content": "Read the pressure gauge on P-3."}]
    client = _client(server)
    kwargs = {"model": MODEL, "messages": ask, "temperature": 0, "max_tokens": 60, "tools": [GAUGE, TICKET],
              "tool_choice": tool_choice}
    if stream:
        text, calls, finish = _streamed(client.chat.completions.create(stream=True, **kwargs))  # type: ignore[call-overload]
    else:
        done = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
        text, finish = done.choices[0].message.content or "", done.choices[0].finish_reason
        calls = [{"name": c.function.name, "arguments": c.function.arguments}
                 for c in done.choices[0].message.tool_calls or []]
    if choice == "auto" and not calls:
        assert text and finish in ("stop", "length")
        return
    assert finish == "tool_calls" and len(calls) == 1 and not text
    params = {t["function"]["name"]: t["function"]["parameters"] for t in (GAUGE, TICKET)}
    assert calls[0]["name"] in params
    if choice == "named":
        assert calls[0]["name"] == "open_ticket"
    jsonschema.validate(json.loads(calls[0]["arguments"]), params[calls[0]["name"]])


def test_a_schema_the_grammar_cannot_enforce_is_refused(server: str) -> None:
    from openai import BadRequestError

    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "format": "email"}}}
    with pytest.raises(BadRequestError) as e:
        _client(server).chat.completions.create(model=MODEL, messages=PUMP, response_format=fmt)
    assert "format" in str(e.value)
