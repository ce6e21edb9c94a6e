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
