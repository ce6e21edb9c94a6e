"""`fieldllm serve`: bind the port, load the backend (a bad package fails before uvicorn starts), then run uvicorn."""

from __future__ import annotations

import errno
import logging
import socket
from pathlib import Path

import uvicorn

from model_prep.errors import InputError

from .api import Backend
from .app import create_app
from .settings import Settings, is_loopback

log = logging.getLogger("fieldllm.serve")


def make_backend(settings: Settings) -> Backend:
    if settings.upstream:
        from .upstream import UpstreamBackend

        if not settings.upstream.startswith(("http://", "https://")):
            raise InputError(f"--upstream {settings.upstream!r} is not an http(s) URL; write e.g. "
                             "http://127.0.0.1:8080/v1")
        return UpstreamBackend(settings)
    from .local import LocalBackend

    if not settings.package.exists():
        raise InputError(f"no model package at {settings.package} (relative to {Path.cwd()}): pass --package DIR "
                         "(or FIELDLLM_PACKAGE), or create one there with `fieldllm prepare`")
    return LocalBackend.from_package(settings.package, settings)


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


def url_of(host: str, port: int) -> str:
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}/"


def serve(settings: Settings) -> int:
    sock = bind(settings.host, settings.port)  # first: a port in use is found before the model loads
    try:
        backend = make_backend(settings)
    except BaseException:
        sock.close()
        raise
    if not is_loopback(settings.host) and settings.token is None:
        print(f"fieldllm serve: listening on {settings.host} without a token: anyone on the network can use the "
              "model (set FIELDLLM_TOKEN to require one)")
    config = uvicorn.Config(create_app(settings, backend), host=settings.host, port=sock.getsockname()[1],
                            log_level=settings.log_level,
                            # a stream is a long response, not an idle connection; these bound idle and shutdown
                            # waits only
                            timeout_keep_alive=5, timeout_graceful_shutdown=10)
    print(f"fieldllm serve: open {url_of(settings.host, sock.getsockname()[1])} (Ctrl-C stops)", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
