"""Bearer token, CORS and Private Network Access preflights, the Host check, and security headers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from app.server.auth import token_matches
from app.server.headers import CONTENT_SECURITY_POLICY, CROSS_ORIGIN_ISOLATION
from app.server.hosts import host_name
from app.server.settings import Settings

from .conftest import FRANCE, fake_app
from .test_validation import assert_openai_error

TOKEN = "s3cret-token"
APP_ORIGIN = "http://192.168.1.20:8000"
CHAT = {"model": "fake-model", "messages": FRANCE}


@pytest.fixture
def guarded() -> TestClient:
    return TestClient(fake_app(token=TOKEN, allow_origin=(APP_ORIGIN,)))


def test_token_required_on_the_api(guarded: TestClient) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN},
                    {"authorization": f"Basic {TOKEN}"}, {"authorization": f"Bearer {TOKEN}x"}):
        r = guarded.post("/v1/chat/completions", json=CHAT, headers=headers)
        assert_openai_error(r, 401, None, "invalid_api_key")
        assert r.headers["www-authenticate"] == "Bearer"
    assert_openai_error(guarded.get("/v1/models"), 401)
    assert_openai_error(guarded.get("/v1/nothing-here"), 401)  # no probing for endpoints without the token


def test_token_accepted(guarded: TestClient) -> None:
    ok = guarded.post("/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert guarded.get("/v1/models", headers={"authorization": f"bearer {TOKEN}"}).status_code == 200


def test_open_without_token(guarded: TestClient) -> None:
    """The page, the health check and the schema load before the app can ask the user for the token."""
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/openapi.json").status_code == 200
    assert guarded.get("/").status_code == 200


def test_token_comparison() -> None:
    assert token_matches(f"Bearer {TOKEN}", TOKEN)
    assert not token_matches("Bearer s3cret-toke", TOKEN)
    assert not token_matches("Bearer \u00e9t\u00e9", TOKEN)  # header text outside ASCII must not raise
    assert token_matches("Bearer \u00c3\u00a9", "\u00e9")  # a UTF-8 token arrives as its bytes read as latin-1


def test_preflight_from_an_allowed_origin(guarded: TestClient) -> None:
    r = guarded.options("/v1/chat/completions", headers={
        "origin": APP_ORIGIN, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
        "access-control-request-private-network": "true"})
    assert r.status_code == 204  # no token needed: browsers never send credentials on a preflight
    assert r.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "POST" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "authorization, content-type"
    assert r.headers["access-control-allow-private-network"] == "true"
    assert "Origin" in r.headers["vary"]


def test_preflight_without_private_network_request(guarded: TestClient) -> None:
    r = guarded.options("/v1/models", headers={"origin": APP_ORIGIN, "access-control-request-method": "GET"})
    assert r.status_code == 204 and "access-control-allow-private-network" not in r.headers


def test_preflight_from_another_origin_is_refused(guarded: TestClient) -> None:
    r = guarded.options("/v1/chat/completions", headers={
        "origin": "http://evil.example", "access-control-request-method": "POST",
        "access-control-request-private-network": "true"})
    assert_openai_error(r, 403, None, "origin_not_allowed")
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-private-network" not in r.headers


def test_cors_headers_on_answers_to_allowed_origins(guarded: TestClient) -> None:
    r = guarded.post("/v1/chat/completions", json=CHAT,
                     headers={"origin": APP_ORIGIN, "authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP_ORIGIN
    assert r.headers["access-control-expose-headers"] == "Retry-After"
    denied = guarded.post("/v1/chat/completions", json=CHAT, headers={"origin": APP_ORIGIN})
    assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == APP_ORIGIN  # readable


def test_requests_from_other_origins_are_refused_before_running() -> None:
    """A page elsewhere could send a "simple" POST it cannot read, only to make the model work: refused."""
    engine_app = fake_app()
    with TestClient(engine_app) as client:
        r = client.post("/v1/chat/completions", content=b'{"model": "fake-model", "messages": []}',
                        headers={"origin": "http://evil.example", "content-type": "text/plain"})
        assert_openai_error(r, 403, None, "origin_not_allowed")
        # same origin: browsers send Origin on POST too, and that is always fine
        same = client.post("/v1/chat/completions", json=CHAT, headers={"origin": "http://testserver"})
        assert same.status_code == 200 and "access-control-allow-origin" not in same.headers


def test_no_wildcard_by_default_and_star_when_asked() -> None:
    assert Settings().allow_origin == ()
    with TestClient(fake_app(allow_origin=("*",))) as client:
        r = client.options("/v1/models", headers={"origin": "http://any.example",
                                                  "access-control-request-method": "GET"})
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "http://any.example"


def test_host_check_against_dns_rebinding() -> None:
    with TestClient(fake_app(allow_host=()), base_url="http://attacker.example") as client:  # loopback defaults
        assert_openai_error(client.get("/healthz"), 400, None, "invalid_host")
        for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
            assert client.get("/healthz", headers={"host": host}).status_code == 200
    lan_app = fake_app(allow_host=(), host="0.0.0.0", no_auth=True)
    with TestClient(lan_app, base_url="http://192.168.1.5:8000") as client:
        assert client.get("/healthz").status_code == 200  # an address: rebinding needs a name
        # on the network, with no token, the check still holds (issue 15.7): a rebinding page gets nothing
        for path in ("/healthz", "/v1/models", "/"):
            assert_openai_error(client.get(path, headers={"host": "attacker.example:8000"}), 400, None,
                                "invalid_host")
        r = client.post("/v1/chat/completions", json=CHAT, headers={"host": "rebind.attacker.example"})
        assert_openai_error(r, 400, None, "invalid_host")
        import socket

        assert client.get("/healthz", headers={"host": f"{socket.gethostname()}:8000"}).status_code == 200
    with TestClient(fake_app(allow_host=("fieldbox.lan",), host="0.0.0.0", no_auth=True)) as client:
        assert client.get("/healthz", headers={"host": "fieldbox.lan:8000"}).status_code == 200
        assert client.get("/healthz", headers={"host": "[fd00::5]:8000"}).status_code == 200
        assert_openai_error(client.get("/healthz", headers={"host": "other.lan"}), 400, None, "invalid_host")


def test_host_name() -> None:
    assert host_name("[::1]:8000") == "::1"
    assert host_name("Example.ORG:80") == "example.org"
    assert host_name("127.0.0.1") == "127.0.0.1"


def test_security_headers_everywhere(client: TestClient) -> None:
    for r in (client.get("/"), client.get("/healthz"), client.get("/v1/models"), client.get("/missing.js"),
              client.post("/v1/chat/completions", content=b"nonsense")):
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        # cross-origin isolated: the CPU engine's threads need SharedArrayBuffer
        assert r.headers["cross-origin-opener-policy"] == "same-origin"
        assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    for directive in ("default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "worker-src 'self'",
                      "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'"):
        assert directive in CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY


def test_the_service_worker_isolates_as_the_server_does() -> None:
    """sw.js adds the same two isolation headers to the shell it serves from its cache (an app installed from a
    plain static host is isolated from its second start on): its ISOLATION_HEADERS must equal the server's."""
    text = (Path(__file__).parents[2] / "service_worker/sw.js").read_text()
    line = next(x for x in text.splitlines() if x.startswith("const ISOLATION_HEADERS = "))
    literal = line.removeprefix("const ISOLATION_HEADERS = ").removesuffix(";").replace("'", '"')
    sw_headers = {name.lower(): value for name, value in json.loads(literal).items()}
    assert sw_headers == CROSS_ORIGIN_ISOLATION


def test_the_built_pages_import_map_is_allowed(tmp_path: Path) -> None:
    """The page's one inline script, its import map, runs under the server's policy: its hash from build-info.json
    joins script-src (without it the browser ignores the map and bare imports fail); a bad hash never does."""
    good, bad = "'sha256-" + "A" * 43 + "='", "'unsafe-inline'"
    (tmp_path / "build-info.json").write_text(json.dumps({"script_hashes": [good, bad]}))
    with TestClient(fake_app(dist=tmp_path)) as client:
        policy = client.get("/healthz").headers["content-security-policy"]
    assert f"script-src 'self' 'wasm-unsafe-eval' {good};" in policy
    assert "unsafe-inline" not in policy
    with TestClient(fake_app(dist=tmp_path / "none")) as client:
        assert client.get("/healthz").headers["content-security-policy"] == CONTENT_SECURITY_POLICY
