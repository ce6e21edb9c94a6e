"""`fieldllm serve`: check the settings, bind the ports, load the backend (a bad package or certificate fails before
uvicorn starts), then run uvicorn: HTTPS with --tls-cert, plus a plain-HTTP listener that redirects to it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from model_prep.errors import InputError

from .api import Backend
from .app import create_app
from .lan import Lan, create_redirect_app
from .settings import DEFAULT_PACKAGE, Settings, is_loopback, machine_names

log = logging.getLogger("fieldllm.serve")


def make_backend(settings: Settings) -> Backend:
    if settings.upstream:
        from .upstream import UpstreamBackend

        if not settings.upstream.startswith(("http://", "https://")):
            raise InputError(f"--upstream {settings.upstream!r} is not an http(s) URL; write e.g. "
                             "http://127.0.0.1:8080/v1")
        return UpstreamBackend(settings)
    from .local import LocalBackend

    return LocalBackend.from_package(package_to_serve(settings.package), settings)


def package_to_serve(package: Path) -> Path:
    """The package given, or for the default (build/models/smollm2-135m-instruct) when it is missing, the one package
    under build/models/: where `fieldllm prepare` with no --out puts it (build/models/smollm2-135m-instruct.q4_1)."""
    if package.exists():
        return package
    found = []
    if package == DEFAULT_PACKAGE:
        found = sorted(p.parent for p in DEFAULT_PACKAGE.parent.glob("*/manifest.json"))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise InputError(f"several packages under {DEFAULT_PACKAGE.parent}: say which with --package DIR (or "
                         f"FIELDLLM_PACKAGE): {', '.join(str(p) for p in found)}")
    raise InputError(f"no model package at {package} (relative to {Path.cwd()}): pass --package DIR "
                     "(or FIELDLLM_PACKAGE), or create one there with `fieldllm prepare`")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, opened before uvicorn starts so that a port in use is one clear line, not a traceback
    after "startup complete"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise InputError(f"port {port} on {host} is in use (another server?); pick another with --port N "
                             "(or FIELDLLM_PORT)") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise InputError(f"{host} is not an address of this machine; pass --host with one of its addresses, "
                             "0.0.0.0 for all (or FIELDLLM_HOST)") from None
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int, scheme: str = "http") -> str:
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    return f"{scheme}://{shown}:{port}/"


def require_auth_choice(settings: Settings) -> None:
    """On a network address the API needs a token, or the user's explicit --no-auth."""
    if settings.needs_auth_choice():
        raise InputError(f"--host {settings.host} makes the model reachable from the network, and by web pages that "
                         "browsers on it open: set a token (FIELDLLM_TOKEN=..., or --token) that the app and API "
                         "clients must send, or pass --no-auth to let anyone use it")


def check_tls(settings: Settings) -> None:
    """The certificate and key load together (ssl's own errors are a traceback after "startup")."""
    if settings.tls_cert is None or settings.tls_key is None:
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except FileNotFoundError as e:
        raise InputError(f"no such file: {e.filename} (make the certificate with `fieldllm cert`)") from None
    except OSError as e:  # ssl.SSLError too
        detail = getattr(e, "reason", None) or e.strerror or str(e)
        raise InputError(f"--tls-cert {settings.tls_cert} and --tls-key {settings.tls_key} cannot be used together "
                         f"({detail}): pass the server.crt and server.key that `fieldllm cert` wrote") from None


def _shown_hosts(settings: Settings, lan: Lan) -> list[str]:
    """The names under which to print the app's address: with HTTPS, names the certificate covers; on a wildcard
    address, the names that other devices use first."""
    wildcard = settings.host in ("0.0.0.0", "::")
    if not lan.https:
        return [*[n for n in machine_names() if n != "localhost"][:1], settings.host] if wildcard else [settings.host]
    if is_loopback(settings.host) and "localhost" in lan.cert_names:
        return ["localhost"]
    if not wildcard:
        return [settings.host]
    return [n for n in lan.cert_names if n != "localhost"][:2] or [settings.host]


class _Quiet(uvicorn.Server):
    """The redirect listener: the main server owns Ctrl-C, and stops this one when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _run(main: uvicorn.Server, sock: socket.socket, redirect: uvicorn.Server | None,
               http_sock: socket.socket | None) -> None:
    task = asyncio.create_task(redirect.serve(sockets=[http_sock])) if redirect and http_sock else None
    try:
        await main.serve(sockets=[sock])
    finally:
        if redirect is not None and task is not None:
            redirect.should_exit = True
            await task


def serve(settings: Settings) -> int:
    require_auth_choice(settings)
    check_tls(settings)
    lan = Lan.from_settings(settings)
    sock = bind(settings.host, settings.port)  # first: a port in use is found before the model loads
    http_sock = None
    try:
        if settings.http_port is not None and lan.https:
            http_sock = bind(settings.host, settings.http_port)
        backend = make_backend(settings)
    except BaseException:
        sock.close()
        if http_sock is not None:
            http_sock.close()
        raise
    port = sock.getsockname()[1]
    scheme = "https" if lan.https else "http"

    def config(app: Starlette, port: int, tls: bool) -> uvicorn.Config:
        return uvicorn.Config(app, host=settings.host, port=port, log_level=settings.log_level,
                              ssl_certfile=str(settings.tls_cert) if tls else None,
                              ssl_keyfile=str(settings.tls_key) if tls else None,
                              # a stream is a long response, not an idle connection; these bound idle and shutdown
                              # waits only
                              timeout_keep_alive=5, timeout_graceful_shutdown=10)

    main = uvicorn.Server(config(create_app(settings, backend, lan), port, lan.https))
    redirect = None
    if http_sock is not None:
        redirect = _Quiet(config(create_redirect_app(settings, lan, port), http_sock.getsockname()[1], False))
    for line in _messages(settings, lan, port, scheme, http_sock.getsockname()[1] if http_sock else None):
        print(f"fieldllm serve: {line}", flush=True)
    asyncio.run(_run(main, sock, redirect, http_sock))
    return 0


def _messages(settings: Settings, lan: Lan, port: int, scheme: str, http_port: int | None) -> list[str]:
    lines = []
    if settings.no_auth and not is_loopback(settings.host):
        lines.append(f"--no-auth on {settings.host}: anyone on the network, and any web page that a browser on it "
                     "opens, can send questions to the model")
    if not is_loopback(settings.host) and not lan.https:
        lines.append("plain HTTP: browsers on other devices answer through this server but cannot install the app "
                     "for offline use; for that, run `fieldllm cert` and start again with the --tls-cert and "
                     "--tls-key it prints")
    hosts = _shown_hosts(settings, lan)
    if lan.https:
        expiry = _expiry_note(settings)
        if expiry:
            lines.append(expiry)
        if lan.ca_pem is not None:
            ca_at = url_of(hosts[0], http_port) if http_port is not None else url_of(hosts[0], port, "https")
            lines.append(f"each device installs the local CA once: open {ca_at}ca for the file and instructions "
                         f"(its SHA-256 fingerprint: {lan.ca_fingerprint})")
    fragment = f"#token={settings.token}" if settings.token else ""
    urls = [url_of(h, port, scheme) + fragment for h in hosts]
    lines.append(f"open {' or '.join(urls)} (Ctrl-C stops)")
    return lines


def _expiry_note(settings: Settings) -> str | None:
    from .tls import read_server_cert

    assert settings.tls_cert is not None
    left = read_server_cert(settings.tls_cert).not_after - dt.datetime.now(dt.UTC)
    if left.total_seconds() <= 0:
        return (f"the certificate {settings.tls_cert} has expired: devices will refuse it; renew it with "
                "`fieldllm cert --force` (the CA stays)")
    if left.days < 30:
        return f"the certificate {settings.tls_cert} expires in {left.days} days: renew it with `fieldllm cert --force`"
    return None
