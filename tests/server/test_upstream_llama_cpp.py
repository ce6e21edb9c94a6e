"""--upstream against llama.cpp's Python server (a fake that reproduces it: fake_llama_cpp.py) and the model lists of
the other OpenAI-compatible servers. Issue 15 items 1, 2 and 9: the model list is read for what is used, a stream
that ends without a finish reason is never a success, and features the upstream supports pass through, checked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from app.server.app import create_app
from app.server.errors import APIError
from app.server.upstream import UpstreamBackend, listed_models

from .aio import run_async
from .conftest import FRANCE, live_server, make_settings
from .fake_llama_cpp import MODEL, FakeLlamaCpp
from .test_validation import assert_openai_error

CHAT: dict[str, Any] = {"model": MODEL, "messages": FRANCE}
TOOLS = [{"type": "function", "function": {"name": "read_gauge", "parameters": {
    "type": "object", "properties": {"tag": {"type": "string"}}, "required": ["tag"]}}}]

# GET /v1/models as each server writes it (trimmed to one model; the fields are theirs)
MODEL_LISTS: dict[str, dict[str, Any]] = {
    "llama-cpp-python": {"object": "list", "data": [{"id": "m.gguf", "object": "model", "owned_by": "me",
                                                     "permissions": []}]},
    "llama-server": {"models": [{"name": "m.gguf", "model": "m.gguf", "modified_at": "", "size": "", "digest": "",
                                 "type": "model", "description": "", "tags": [""], "capabilities": ["completion"],
                                 "parameters": "", "details": {"parent_model": "", "format": "gguf"}}],
                     "object": "list", "data": [{"id": "m.gguf", "object": "model", "created": 1735142223,
                                                 "owned_by": "llamacpp", "meta": {"vocab_type": 2, "n_vocab": 49152,
                                                                                  "n_ctx_train": 8192}}]},
    "vllm": {"object": "list", "data": [{"id": "m.gguf", "object": "model", "created": 1735142223, "owned_by": "vllm",
                                         "root": "HuggingFaceTB/SmolLM2-135M-Instruct", "parent": None,
                                         "max_model_len": 8192, "permission": [{
                                             "id": "modelperm-1", "object": "model_permission", "created": 1735142223,
                                             "allow_create_engine": False, "allow_sampling": True,
                                             "allow_logprobs": True, "allow_search_indices": False,
                                             "allow_view": True, "allow_fine_tuning": False, "organization": "*",
                                             "group": None, "is_blocking": False}]}]},
    "ollama": {"object": "list", "data": [{"id": "m.gguf", "object": "model", "created": 1735142223,
                                           "owned_by": "library"}]},
}


@pytest.mark.parametrize("server", list(MODEL_LISTS))
def test_model_lists_of_real_servers(server: str) -> None:
    cards = listed_models(json.dumps(MODEL_LISTS[server]).encode())
    assert [c.id for c in cards] == ["m.gguf"] and all(isinstance(c.created, int) for c in cards)


@pytest.mark.parametrize("body", [b"[]", b'{"data": [{"name": "m"}]}', b'{"data": [{"id": 3}]}', b"[" * 100_000,
                                  b"<html>"])
def test_model_lists_without_ids_are_a_502(body: bytes) -> None:
    with pytest.raises(APIError) as e:
        listed_models(body)
    assert e.value.status == 502


@pytest.fixture
def upstream() -> Iterator[Callable[..., tuple[FakeLlamaCpp, str]]]:
    """upstream(**knobs, proxy_settings...) -> (the fake llama-cpp-python server, the URL of fieldllm in front)."""
    with ExitStack() as stack:
        def start(parallel: int = 4, **knobs: Any) -> tuple[FakeLlamaCpp, str]:
            fake = FakeLlamaCpp(**knobs)
            up = stack.enter_context(live_server(fake.app))
            settings = make_settings(upstream=up, upstream_parallel=parallel)
            return fake, stack.enter_context(live_server(create_app(settings, UpstreamBackend(settings))))

        yield start


def _events(text: str) -> list[Any]:
    return [json.loads(d) if d != "[DONE]" else d
            for e in text.split("\n\n") if e.startswith("data: ") for d in [e.removeprefix("data: ")]]


def _post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_llama_cpp_python_model_list_works(upstream: Callable[..., tuple[FakeLlamaCpp, str]]) -> None:
    """Issue 15 item 1: every request was a 502, "the upstream server's model list is not OpenAI-shaped"."""
    _, url = upstream()
    listed = httpx.get(f"{url}/v1/models").json()
    assert [m["id"] for m in listed["data"]] == [MODEL] and isinstance(listed["data"][0]["created"], int)
    done = _post(url, CHAT)
    assert done.status_code == 200, done.text
    assert done.json()["choices"][0]["message"]["content"] == "The capital of France is Paris."


def _outcome(r: httpx.Response) -> str:
    """"ok" (content, a finish reason, [DONE]), "502" (refused before anything went out), "error event" (cut off
    after content went out, and said so), or a description of a stream passed on as a success that is none."""
    if r.status_code == 502:
        assert r.json()["error"]["code"] == "upstream_incomplete"
        return "502"
    assert r.status_code == 200, r.text
    events = _events(r.text)
    if events[-1] == "[DONE]":
        chunks = events[:-1]
        finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        return "ok" if finish[-1] == "stop" and text == "The capital of France is Paris." else \
            f"[DONE] after {text!r}, finish reasons {finish}"
    assert "error" in events[-1] and events[-1]["error"]["code"] == "upstream_incomplete", events[-1]
    return "error event"


def test_streams_interrupted_by_a_new_request_are_never_successes(
        upstream: Callable[..., tuple[FakeLlamaCpp, str]]) -> None:
    """Issue 15 item 2: with --upstream-parallel 4, 3 of 4 concurrent streams were 200 + [DONE] with no content and
    no finish_reason, passed on as successes."""
    fake, url = upstream(delay=0.05)

    async def four() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            async def one(i: int) -> httpx.Response:
                await asyncio.sleep(0.02 * i)  # in order, each while the one before streams
                return await http.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": True})
            return await asyncio.gather(*(one(i) for i in range(4)))

    outcomes = [_outcome(r) for r in run_async(four())]
    assert fake.interrupted >= 1  # the fake did cut streams short
    assert set(outcomes) <= {"ok", "502", "error event"}, outcomes
    assert outcomes.count("ok") == 4 - fake.interrupted and "ok" in outcomes
    r = next(r for r in run_async(four()) if r.status_code == 502)  # says what to do
    assert "--upstream-parallel 1" in r.json()["error"]["message"]


def test_one_at_a_time_upstream_answers_every_stream(upstream: Callable[..., tuple[FakeLlamaCpp, str]]) -> None:
    fake, url = upstream(parallel=1, delay=0.02)

    async def four() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as http:
            return await asyncio.gather(*(http.post(f"{url}/v1/chat/completions", json={**CHAT, "stream": True})
                                          for _ in range(4)))

    assert [_outcome(r) for r in run_async(four())] == ["ok"] * 4 and fake.interrupted == 0


@pytest.mark.parametrize(("drop_after", "outcome"), [(1, "502"), (3, "error event")])
def test_upstream_that_hangs_up_mid_stream(upstream: Callable[..., tuple[FakeLlamaCpp, str]], drop_after: int,
                                          outcome: str) -> None:
    _, url = upstream(drop_after=drop_after)
    assert _outcome(_post(url, {**CHAT, "stream": True})) == outcome


def test_answers_without_a_finish_reason_are_withheld(upstream: Callable[..., tuple[FakeLlamaCpp, str]]) -> None:
    _, url = upstream(finish_reason=None)
    assert_openai_error(_post(url, CHAT), 502, None, "upstream_incomplete")
    assert _outcome(_post(url, {**CHAT, "stream": True})) == "error event"  # content went out: then the error


def test_features_the_upstream_supports_pass_through(upstream: Callable[..., tuple[FakeLlamaCpp, str]]) -> None:
    """Issue 15 item 9: json_object, a named tool_choice and logprobs reach the upstream, and what comes back is
    checked before it is passed on (streamed too)."""
    fake, url = upstream()
    r = _post(url, {**CHAT, "response_format": {"type": "json_object"}})
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["choices"][0]["message"]["content"]) == {"capital": "Paris"}
    assert fake.requests[-1]["response_format"] == {"type": "json_object"}

    named = {"type": "function", "function": {"name": "read_gauge"}}
    r = _post(url, {**CHAT, "tools": TOOLS, "tool_choice": named})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "read_gauge", "arguments": '{"tag": "P-3"}'}
    assert fake.requests[-1]["tool_choice"] == named and fake.requests[-1]["tools"] == TOOLS

    r = _post(url, {**CHAT, "logprobs": True, "top_logprobs": 1})
    assert r.status_code == 200, r.text
    assert [t["token"] for t in r.json()["choices"][0]["logprobs"]["content"]][:2] == ["The", " capital"]
    assert fake.requests[-1]["logprobs"] is True and fake.requests[-1]["top_logprobs"] == 1

    # a structured stream is checked whole, then replayed: with its logprobs
    r = _post(url, {**CHAT, "stream": True, "response_format": {"type": "json_object"}, "logprobs": True})
    events = _events(r.text)
    assert events[-1] == "[DONE]" and fake.requests[-1]["stream"] is False
    content = [c["choices"][0] for c in events[:-1] if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert content[0]["delta"]["content"] == '{"capital": "Paris"}' and content[0]["logprobs"]["content"]


def test_a_tool_call_that_does_not_fit_is_withheld(upstream: Callable[..., tuple[FakeLlamaCpp, str]]) -> None:
    _, url = upstream()
    tools = [{"type": "function", "function": {"name": "read_gauge", "parameters": {
        "type": "object", "properties": {"tag": {"type": "integer"}}}}}]  # the fake sends a string
    r = _post(url, {**CHAT, "tools": tools, "tool_choice": {"type": "function", "function": {"name": "read_gauge"}}})
    assert_openai_error(r, 502, None, "upstream_invalid_output")


def test_include_usage_is_honoured_or_said_to_be_missing(upstream: Callable[..., tuple[FakeLlamaCpp, str]]) -> None:
    """llama-cpp-python sends no usage in streams: the first such stream says so (an error event, not [DONE]), and
    fieldllm then asks for whole answers and replays them, usage included."""
    fake, url = upstream()
    asked = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    assert fake.requests == [] and _outcome(_post(url, asked)) == "error event"
    assert fake.requests[-1]["stream_options"] == {"include_usage": True}
    events = _events(_post(url, asked).text)
    assert fake.requests[-1]["stream"] is False
    assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 7 and events[-2]["choices"] == []
    assert _outcome(_post(url, {**CHAT, "stream": True})) == "ok"  # streams without it still stream
    assert fake.requests[-1]["stream"] is True


def test_include_usage_passes_through_when_the_upstream_streams_it(
        upstream: Callable[..., tuple[FakeLlamaCpp, str]]) -> None:
    fake, url = upstream(stream_usage=True)
    for _ in range(2):
        events = _events(_post(url, {**CHAT, "stream": True, "stream_options": {"include_usage": True}}).text)
        assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 7
        assert fake.requests[-1]["stream"] is True
