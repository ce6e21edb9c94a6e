"""Bad requests get a 4xx with an OpenAI-style error body, never a 5xx (the fake engine; validation is the real one)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.server.parse import MAX_DEPTH, depth

from .conftest import FRANCE, fake_app
from .fake_engine import FakeEngine

MODEL = "fake-model"
OK: dict[str, Any] = {"model": MODEL, "messages": FRANCE}


def _post(client: TestClient, body: Any, raw: bytes | None = None) -> Any:
    content = raw if raw is not None else json.dumps(body).encode()
    return client.post("/v1/chat/completions", content=content, headers={"content-type": "application/json"})


def assert_openai_error(r: Any, status: int, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return dict(error)


BAD: list[tuple[str, Any, str | None, str | None]] = [
    # (case, body, param, code)
    ("not JSON", b"{model: x", None, "invalid_json"),
    ("empty body", b"", None, "invalid_json"),
    ("JSON but not an object", [1, 2], None, None),
    ("no model", {"messages": FRANCE}, "model", None),
    ("no messages", {"model": MODEL}, "messages", None),
    ("empty messages", {**OK, "messages": []}, "messages", None),
    ("message not an object", {**OK, "messages": ["hi"]}, "messages.0", None),
    ("unknown role", {**OK, "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role", None),
    ("content a number", {**OK, "messages": [{"role": "user", "content": 3}]}, None, None),
    ("image content", {**OK, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     None, None),
    ("model a number", {**OK, "model": 3}, "model", None),
    ("max_tokens a string", {**OK, "max_tokens": "10"}, "max_tokens", None),
    ("max_tokens a float", {**OK, "max_tokens": 1.5}, "max_tokens", None),
    ("max_tokens negative", {**OK, "max_tokens": -1}, "max_tokens", None),
    ("max_tokens zero", {**OK, "max_tokens": 0}, "max_tokens", None),
    ("max_tokens huge", {**OK, "max_tokens": 10**30}, "max_tokens", None),
    ("max_tokens over the server's cap", {**OK, "max_tokens": 513}, "max_tokens", "invalid_value"),
    ("max_completion_tokens over the cap", {**OK, "max_completion_tokens": 100000}, "max_completion_tokens", None),
    ("temperature too high", {**OK, "temperature": 2.5}, "temperature", None),
    ("temperature negative", {**OK, "temperature": -0.1}, "temperature", None),
    ("temperature a string", {**OK, "temperature": "hot"}, "temperature", None),
    ("top_p above 1", {**OK, "top_p": 1.5}, "top_p", None),
    ("stream a string", {**OK, "stream": "yes"}, "stream", None),
    ("stream_options of the wrong shape", {**OK, "stream": True, "stream_options": {"usage": True}},
     "stream_options.usage", "unknown_parameter"),
    ("stop a number", {**OK, "stop": 5}, "stop", None),
    ("five stops", {**OK, "stop": ["a", "b", "c", "d", "e"]}, "stop", None),
    ("seed a fraction", {**OK, "seed": 1.5}, "seed", None),
    ("seed a boolean", {**OK, "seed": True}, "seed", None),
    ("seed out of range", {**OK, "seed": 2**70}, "seed", None),
    ("unknown parameter", {**OK, "colour": "blue"}, "colour", "unknown_parameter"),
    ("n > 1", {**OK, "n": 2}, "n", "unsupported_parameter"),
    ("n = 0", {**OK, "n": 0}, "n", "unsupported_parameter"),
    ("n a boolean", {**OK, "n": True}, "n", "unsupported_parameter"),
    ("audio", {**OK, "audio": {"voice": "alloy", "format": "wav"}}, "audio", "unsupported_parameter"),
    ("image modality", {**OK, "modalities": ["text", "audio"]}, "modalities", "unsupported_parameter"),
    # structured output the grammar cannot honour: refused, never answered with looser output
    ("a schema keyword the grammar cannot enforce",
     {**OK, "response_format": {"type": "json_schema",
                                "json_schema": {"name": "x", "schema": {"not": {"type": "null"}}}}},
     "response_format", "unsupported_schema"),
    ("a range on a number (only integer ranges are enforced)",
     {**OK, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
         "type": "object", "properties": {"v": {"type": "number", "maximum": 1}}}}}},
     "response_format", "unsupported_schema"),
    ("oneOf (compiled as anyOf)",
     {**OK, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"oneOf": []}}}},
     "response_format", "unsupported_schema"),
    ("tool parameters with an unsupported keyword",
     {**OK, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                                    "patternProperties": {}}}}]},
     "tools", "unsupported_schema"),
    ("a named tool_choice that is not among the tools",
     {**OK, "tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tools", "unsupported_schema"),
    ("tool_choice required without tools", {**OK, "tool_choice": "required"}, "response_format",
     "unsupported_schema"),
    ("the same function twice", {**OK, "tools": [{"type": "function", "function": {"name": "f"}}] * 2}, "tools",
     "unsupported_schema"),
    ("response_format and tools together",
     {**OK, "response_format": {"type": "json_object"}, "tools": [{"type": "function", "function": {"name": "f"}}]},
     "tools", "unsupported_schema"),
    ("top_logprobs without logprobs", {**OK, "top_logprobs": 2}, "top_logprobs", "invalid_value"),
    ("top_logprobs over 20", {**OK, "logprobs": True, "top_logprobs": 21}, "top_logprobs", None),
    ("logit_bias key not a token id", {**OK, "logit_bias": {"hello": 1}}, "logit_bias", None),
    ("logit_bias over 100", {**OK, "logit_bias": {"5": 101}}, "logit_bias", None),
    ("presence_penalty over 2", {**OK, "presence_penalty": 2.5}, "presence_penalty", None),
    ("deprecated function_call in a message", {**OK, "messages": [*FRANCE, {"role": "assistant", "content": "",
                                                                         "function_call": {"name": "f"}}]},
     "messages.1.function_call", "unsupported_parameter"),
    ("prompt longer than the context", {**OK, "messages": [{"role": "user", "content": "word " * 100}]}, "messages",
     "context_length_exceeded"),
    ("roles the template refuses", {**OK, "messages": [{"role": "user", "content": "hi", "name": 5}]}, None, None),
]


@pytest.mark.parametrize(("body", "param", "code"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_chat_request_is_a_400(client: TestClient, body: Any, param: str | None, code: str | None) -> None:
    r = _post(client, None, body) if isinstance(body, bytes) else _post(client, body)
    assert_openai_error(r, 400, param, code)


def test_unknown_model_is_a_404(client: TestClient) -> None:
    assert_openai_error(_post(client, {**OK, "model": "gpt-4o"}), 404, "model", "model_not_found")


def test_body_over_the_limit_is_a_413() -> None:
    with TestClient(fake_app(max_body=2048)) as client:
        r = _post(client, {**OK, "messages": [{"role": "user", "content": "x" * 4000}]})
        assert_openai_error(r, 413, None, "request_too_large")


def test_unknown_path_and_wrong_method(client: TestClient) -> None:
    assert_openai_error(client.get("/v1/completions"), 404, None, "unknown_url")
    assert_openai_error(client.get("/v1/chat/completions"), 405)
    assert_openai_error(client.post("/v1/models"), 405)


def test_accepted_and_ignored_fields(client: TestClient) -> None:
    """What asks for nothing this server lacks is fine: defaults of unsupported features, bookkeeping fields."""
    body = {**OK, "user": "u1", "metadata": {"a": "b"}, "store": False, "n": 1, "frequency_penalty": 0,
            "presence_penalty": 0.0, "tools": [], "logit_bias": {}, "modalities": ["text"],
            "stream_options": {"include_usage": True},  # ignored without stream, as OpenAI's own server does
            "max_tokens": 3, "max_completion_tokens": 100,  # the newer name wins
            "response_format": {"type": "text"}, "tool_choice": "none", "logprobs": False,
            "messages": [{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "What is the capital"},
                                                      {"type": "text", "text": " of France?"}]}]}
    r = _post(client, body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert "usage" in r.json()


def test_non_streamed_answer_shape(client: TestClient) -> None:
    r = _post(client, {**OK, "max_tokens": 3, "top_p": 0, "seed": -5})
    assert r.status_code == 200
    done = r.json()
    assert done["object"] == "chat.completion" and done["model"] == MODEL and done["id"].startswith("chatcmpl-")
    assert done["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "The capital of",
                                                        "refusal": None},
                                "finish_reason": "length", "logprobs": None}]
    assert done["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def test_streamed_answer_shape(client: TestClient) -> None:
    body = {**OK, "stream": True, "stream_options": {"include_usage": True}, "stop": "France"}
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"
        raw = r.read().decode()
    events = [e.removeprefix("data: ") for e in raw.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == \
        "The capital of "
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_without_usage_has_no_usage_field(client: TestClient) -> None:
    with client.stream("POST", "/v1/chat/completions", json={**OK, "stream": True}) as r:
        chunks = [json.loads(e.removeprefix("data: ")) for e in r.read().decode().split("\n\n") if e
                  and e != "data: [DONE]"]
    assert all("usage" not in c for c in chunks)


def test_models_and_health(client: TestClient) -> None:
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == [MODEL]
    health = client.get("/healthz")
    assert health.json() == {"status": "ok", "backend": "numpy", "models": [MODEL], "busy": 0, "capacity": 5}
    assert health.headers["cache-control"] == "no-store"


def test_openapi_is_generated_from_the_models(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    request = doc["components"]["schemas"]["ChatRequest"]
    assert request["additionalProperties"] is False
    assert request["properties"]["model"]["enum"] == [MODEL]
    assert {"type": "integer", "minimum": 1, "maximum": 512} in request["properties"]["max_tokens"]["anyOf"]
    assert "securitySchemes" not in doc["components"]  # no token configured: none documented
    assert {"messages", "model"} <= set(request["required"])
    assert set(doc["paths"]) == {"/v1/chat/completions", "/v1/models", "/healthz"}


def test_app_serves_again_after_its_lifespan_restarts() -> None:
    """Test clients (and schemathesis) end and start an app's lifespan around each test: the engine thread must
    come back."""
    app = fake_app()
    for _ in range(2):
        with TestClient(app) as client:
            assert client.post("/v1/chat/completions", json=OK).status_code == 200


def test_an_engine_failure_is_a_clean_500_and_frees_the_model() -> None:
    with TestClient(fake_app(FakeEngine(fail_after=2), queue_size=0), raise_server_exceptions=False) as client:
        r = client.post("/v1/chat/completions", json=OK)
        error = assert_openai_error(r, 500)
        assert error["type"] == "server_error"
        with client.stream("POST", "/v1/chat/completions", json={**OK, "stream": True}) as s:
            events = [e for e in s.read().decode().split("\n\n") if e]
        assert json.loads(events[-1].removeprefix("data: "))["error"]["type"] == "server_error"
        assert client.get("/healthz").json()["busy"] == 0


def _nested(levels: int, open: str, leaf: str, close: str) -> str:
    return open * levels + leaf + close * levels


OBJ, ITEMS = '{"a": ', '{"items": '
DEEP = [  # issue 15 item 3: each of these was a RecursionError, a 500 and 60 traceback lines logged twice
    ("400,000 [", b"[" * 400_000),
    ("messages", f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": {_nested(1000, "[", "1", "]")}'
                 '}]}'.encode()),
    ("metadata", f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "hi"}}], "metadata": '
                 f'{_nested(1000, OBJ, "1", "}")}}}'.encode()),
    ("tools", f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "hi"}}], "tools": [{{"type": '
              f'"function", "function": {{"name": "f", "parameters": {_nested(1000, ITEMS, "{}", "}")}}}}}]}}'
              .encode()),
    ("just past the limit", f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "hi"}}], "metadata": '
                            f'{_nested(MAX_DEPTH, OBJ, "1", "}")}}}'.encode()),
]


@pytest.mark.parametrize("raw", [raw for _, raw in DEEP], ids=[case for case, _ in DEEP])
def test_deeply_nested_json_is_a_400(raw: bytes, caplog: pytest.LogCaptureFixture) -> None:
    with TestClient(fake_app()) as client:
        error = assert_openai_error(_post(client, None, raw), 400, None, "invalid_json")
        assert f"more than {MAX_DEPTH} levels" in error["message"]
        assert _post(client, OK).status_code == 200
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_nesting_up_to_the_limit_is_taken(client: TestClient) -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(MAX_DEPTH - 6):  # body > response_format > json_schema > schema: 4 levels before it
        schema = {"type": "array", "items": schema}
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    r = _post(client, {**OK, "response_format": fmt})
    assert r.status_code != 500 and "levels deep" not in r.text  # the fake engine cannot follow grammars: its 400
    assert depth({"a": [1, {"b": []}]}) == 4 and depth(1) == 0 and depth([]) == 1


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonp"])
def test_chat_needs_content_type_json(client: TestClient, content_type: str | None) -> None:
    """Issue 15 item 8: without this, JSON sent as a CORS "simple request" (text/plain, a form) was taken."""
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/v1/chat/completions", content=json.dumps(OK).encode(), headers=headers)
    error = assert_openai_error(r, 415, None, "unsupported_media_type")
    assert "application/json" in error["message"]
    for ok in ("application/json", "Application/JSON; charset=utf-8"):
        r = client.post("/v1/chat/completions", content=json.dumps(OK).encode(), headers={"content-type": ok})
        assert r.status_code == 200, r.text
