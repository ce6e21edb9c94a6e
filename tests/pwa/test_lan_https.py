"""Installing over the local network (issue 14.0), as a tablet would: the real `fieldllm serve` in a subprocess,
Chromium opening it under a LAN-style name, `fieldllm.lan`, that the browser maps to 127.0.0.1
(--host-resolver-rules): http://fieldllm.lan:PORT/ is then an insecure origin, as a LAN address is, while every
byte stays on loopback. The server's certificate comes from `fieldllm cert`; Chromium trusts it through
--ignore-certificate-errors-spki-list (the server key's SPKI hash), which makes the page a secure context.

- HTTPS: the service worker registers, the model downloads, the app answers offline; no CSP violation on any load
  (issue 14.7: the server sends the build's script hashes).
- Plain HTTP on the redirect listener: everything goes to HTTPS except the CA and its instructions.
- Plain HTTP without TLS (an insecure context): the app answers through the server and says why it cannot install;
  with a token, the page gets it from the address that `fieldllm serve` prints (…/#token=KEY).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from app_page import AppPage
from pwa_env import APP_OPTIONS, CHROMIUM, ROOT, WEBGPU_ARGS

from app.server.tls import make_certificates, read_server_cert

LAN = "fieldllm.lan"
MAP = f"--host-resolver-rules=MAP {LAN} 127.0.0.1"
TOKEN = "k3y-for-tablets"
QUESTION = "Generator 2 tripped on overcurrent. What should I check?"


class Serve:
    """`fieldllm serve ARGS` on loopback, ports chosen by the OS; url() as a DistServer's, under fieldllm.lan."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", *args],
                                     cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("fieldllm serve: open "):
                break
        else:
            raise AssertionError(f"fieldllm serve did not start: {''.join(self.lines)}")
        ca = re.search(r"open http://[^:/]+:(\d+)/ca ", "".join(self.lines))
        self.http_port = int(ca.group(1)) if ca else None
        self.open_line = self.lines[-1]
        threading.Thread(target=lambda: [self.lines.append(x) for x in self.proc.stdout or []], daemon=True).start()
        opened = re.search(r"open (https?)://[^:/]+:(\d+)/", self.open_line)
        assert opened, self.open_line
        self.scheme, self.port = opened.group(1), int(opened.group(2))

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{LAN}:{self.port}{path}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tls") / "tls"
    import ipaddress

    make_certificates(folder, [LAN, "localhost"], [ipaddress.ip_address("127.0.0.1")])
    return folder


@pytest.fixture(scope="module")
def https_server(certs: Path, dists: dict[str, Path], packages: dict[str, Path]) -> Iterator[Serve]:
    s = Serve("--port", "0", "--http-port", "0", "--dist", str(dists["v1"]), "--package", str(packages["v1"]),
              "--context", "1024", "--tls-cert", str(certs / "server.crt"), "--tls-key", str(certs / "server.key"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def lan_browser(playwright: Any, certs: Path) -> Iterator[Any]:
    """Chromium that resolves fieldllm.lan to 127.0.0.1 and trusts the server's key (not any other)."""
    spki = base64.b64encode(read_server_cert(certs / "server.crt").spki_sha256).decode()
    b = playwright.chromium.launch(executable_path=CHROMIUM,
                                   args=[*WEBGPU_ARGS, MAP, f"--ignore-certificate-errors-spki-list={spki}"])
    yield b
    b.close()


@pytest.fixture
def open_app(lan_browser: Any) -> Iterator[Callable[..., AppPage]]:
    contexts: list[Any] = []

    def make(server: Serve, path: str = "/", browser: Any = None) -> AppPage:
        context = (browser or lan_browser).new_context()
        context.add_init_script(f"globalThis.FIELDLLM_OPTIONS = {json.dumps(APP_OPTIONS)};")
        contexts.append(context)
        return AppPage(context, server).open(path)  # type: ignore[arg-type]

    yield make
    for c in contexts:
        c.close()


def csp_violations(app: AppPage) -> list[str]:
    return [m for m in app.console if "Content Security Policy" in m or "Content-Security-Policy" in m]


@pytest.mark.slow
def test_https_install_works_end_to_end(https_server: Serve, open_app: Callable[..., AppPage]) -> None:
    assert https_server.scheme == "https"
    app = open_app(https_server)
    assert app.page.evaluate("isSecureContext") is True
    assert app.wait_problem_or("setup") == "setup", app.problem_text()
    app.page.click("#setup-download")
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    assert app.text("#ready-where") == "this device's GPU (WebGPU), offline"
    app.wait_controlled()
    assert app.page.evaluate("navigator.serviceWorker.controller.scriptURL") == https_server.url("/sw.js")

    app.go_offline()
    app.page.reload()
    assert app.wait_problem_or("ready") == "ready", app.problem_text()
    assert app.ask(QUESTION).strip(), "an empty answer"
    # issue 14.7: under `fieldllm serve`, the page's import map runs (its hash is in script-src): no violation
    assert csp_violations(app) == [], csp_violations(app)
    assert app.errors == []


def test_plain_http_redirects_to_https_except_the_ca(https_server: Serve, certs: Path,
                                                     open_app: Callable[..., AppPage]) -> None:
    assert https_server.http_port is not None
    plain = f"http://127.0.0.1:{https_server.http_port}"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def get(path: str, host: str = f"{LAN}:{https_server.http_port}") -> Any:
        try:
            return opener.open(urllib.request.Request(plain + path, headers={"host": host}), timeout=10)
        except urllib.error.HTTPError as e:
            return e

    r = get("/models/index.json?x=1")
    assert r.status == 307 and r.headers["location"] == f"https://{LAN}:{https_server.port}/models/index.json?x=1"
    assert get("/", host="attacker.example").status == 400  # the Host check holds on this listener too
    r = get("/ca.crt")
    assert r.status == 200 and r.headers["content-type"] == "application/x-x509-ca-cert"
    assert r.read() == (certs / "ca.crt").read_bytes()
    r = get("/ca")
    page = r.read().decode()
    assert r.status == 200 and r.headers["content-type"].startswith("text/html")
    assert f"https://{LAN}:{https_server.port}/" in page and "/ca.crt" in page and "Android" in page
    fingerprint = re.search(r"\(its SHA-256 fingerprint: ([0-9A-F:]+)\)", "".join(https_server.lines))
    assert fingerprint and fingerprint.group(1) in page

    # in the browser: the plain address a user types ends on the installable HTTPS app
    app = open_app(https_server)
    app.page.goto(f"http://{LAN}:{https_server.http_port}/")
    assert app.page.url == https_server.url("/")
    assert app.page.evaluate("isSecureContext") is True


@pytest.fixture(scope="module")
def plain_server(dists: dict[str, Path], packages: dict[str, Path]) -> Iterator[Serve]:
    """No TLS, a token (the environment variable), and fieldllm.lan allowed: what a LAN server without HTTPS is."""
    s = Serve("--port", "0", "--dist", str(dists["v1"]), "--package", str(packages["v1"]), "--context", "1024",
              "--allow-host", LAN, env={"FIELDLLM_TOKEN": TOKEN})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def insecure_browser(playwright: Any) -> Iterator[Any]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=[*WEBGPU_ARGS, MAP])
    yield b
    b.close()


@pytest.mark.slow
def test_insecure_context_answers_through_the_server_and_says_why(
        plain_server: Serve, insecure_browser: Any, open_app: Callable[..., AppPage]) -> None:
    assert plain_server.scheme == "http"
    assert f"#token={TOKEN}" in plain_server.open_line  # the address to open carries the key
    # without the key: it cannot install, and the server wants a key: both said, with what to do
    app = open_app(plain_server, browser=insecure_browser)
    assert app.page.evaluate("isSecureContext") is False
    assert app.wait_state("no-storage") == "no-storage"
    text = app.problem_text()
    assert "plain http" in text and "cannot be installed" in text and f"http://{LAN}:{plain_server.port}/ca" in text
    assert "access key" in text and "#token=" in text

    # with the key from the printed address: the server answers, and the screen says why nothing is installed
    app = open_app(plain_server, f"/#token={TOKEN}", browser=insecure_browser)
    assert app.wait_problem_or("ready-server") == "ready-server", app.problem_text()
    notice = app.text("#notice")
    assert "plain http" in notice and "cannot be installed" in notice and "/ca" in notice
    assert "questions go to the server" in notice
    assert app.page.url == plain_server.url("/")  # the key left the address bar
    assert app.ask(QUESTION).strip(), "an empty answer"
    assert app.page.evaluate("navigator.serviceWorker") is None and app.page.evaluate("typeof caches") == "undefined"
    # the key stays with this origin: the plain address works from now on
    app.page.goto(plain_server.url("/"))
    assert app.wait_problem_or("ready-server") == "ready-server", app.problem_text()
    assert csp_violations(app) == [], csp_violations(app)
    assert app.errors == []

    # /ca on a server without HTTPS says how its operator turns it on
    app.page.goto(plain_server.url("/ca"))
    assert "does not serve HTTPS" in app.text("h1") and "fieldllm cert" in app.text("body")


def test_no_csp_violation_on_a_plain_load(https_server: Serve, dists: dict[str, Path],
                                          open_app: Callable[..., AppPage]) -> None:
    """Issue 14.7 on its own: one load of the app from `fieldllm serve` logs no CSP violation, and the policy it
    was sent names the build's import-map hash."""
    app = open_app(https_server)
    app.wait_problem_or("setup")
    policy = app.page.evaluate("fetch('/').then((r) => r.headers.get('content-security-policy'))")
    hashes = json.loads((dists["v1"] / "build-info.json").read_text())["script_hashes"]
    assert hashes and all(h in policy for h in hashes)
    assert csp_violations(app) == [], csp_violations(app)
    assert app.errors == []
