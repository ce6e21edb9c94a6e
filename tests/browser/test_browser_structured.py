"""Structured output in Chromium, on a page and a worker served with the app's Content-Security-Policy
(``script-src 'self' 'wasm-unsafe-eval'``, app/server/headers.py): @mlc-ai/web-xgrammar (its WASM inlined) loads on
the main thread and in the engine's Web Worker, and the browser engine's greedy answer under a JSON Schema grammar
(the GPU argmax under the grammar's bitmask, SwiftShader) has the token ids of the reference engine's constrained
greedy answer (model_prep.reference generate_picks under the same GrammarSpec). 16 tokens: SwiftShader is slow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from browser_harness import Site, reference_engine, start_server

from app.server.headers import SECURITY_HEADERS

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "level": {"enum": ["low", "high", "critical"]},
                                           "note": {"type": "string", "maxLength": 6}},
          "required": ["level", "ok"], "additionalProperties": False}
MESSAGES = [{"role": "user", "content": "The pump bearing runs hot at 78 degrees; what now?"}]
TOKENS = 16


@pytest.fixture
def csp_page(browser: Any, site: Site) -> Iterator[Any]:
    """The structured harness page from a second server on the same folder that sends the app's security headers."""
    server, url = start_server(site.root, SECURITY_HEADERS)
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    console: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    page.set_default_timeout(180_000)
    page.goto(f"{url}/harness/structured.html")
    page.wait_for_function("window.structured !== undefined", timeout=30_000)
    page.console = console  # type: ignore[attr-defined]
    yield page
    context.close()
    server.shutdown()
    server.server_close()
    foreign = [u for u in requests if urlsplit(u).scheme not in ("data", "blob") and not u.startswith(url)]
    assert not foreign, f"requests left {url}: {foreign}"
    violations = [m for m in console if "Content Security Policy" in m or "Refused to" in m]
    assert not violations, violations


def _call(page: Any, fn: str, *args: Any) -> Any:
    return page.evaluate(f"(args) => window.structured.{fn}(...args)", list(args))


@pytest.mark.slow
def test_structured_greedy_ids_match_reference_under_csp(csp_page: Any, tiny: Any, site: Site) -> None:
    from model_prep.reference.grammar import GrammarSpec
    from model_prep.reference.sampling import Sampler

    name = tiny("llama", "q4")
    ref = reference_engine(site.models[name])
    spec = GrammarSpec.json_schema(SCHEMA)
    prompt = ref.prompt_ids(MESSAGES)
    expected = [p.token for p in ref.generate_picks(prompt, TOKENS, Sampler(), ref.grammars().constraint(spec))]
    assert len(expected) >= 8, ref.decode(expected)

    # main thread: the engine's own token loop under the same spec
    _call(csp_page, "loadEngine", name)
    assert _call(csp_page, "promptIds", MESSAGES) == prompt
    got = _call(csp_page, "generateIds", prompt, TOKENS, spec.to_json())
    assert "error" not in got, (got, csp_page.console[-10:])
    assert got["ids"] == expected, f"{ref.decode(got['ids'])!r} vs {ref.decode(expected)!r}"

    # the app's way: the engine in its Web Worker, an OpenAI request with response_format
    _call(csp_page, "startWorker", name)
    answer = _call(csp_page, "workerChat", {
        "messages": MESSAGES, "max_tokens": TOKENS,
        "response_format": {"type": "json_schema", "json_schema": {"name": "reading", "schema": SCHEMA}}})
    assert "error" not in answer, (answer, csp_page.console[-10:])
    choice = answer["completion"]["choices"][0]
    assert choice["message"]["content"] == ref.decode(expected)
    assert choice["finish_reason"] == ("length" if len(expected) == TOKENS else "stop")
    assert answer["completion"]["timings"]["predicted_n"] == len(expected)
