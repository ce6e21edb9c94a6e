"""`fieldllm serve`: load the backend (so that a bad package fails before the port opens), then run uvicorn."""

from __future__ import annotations

import logging

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

    return LocalBackend.from_package(settings.package, settings)


def serve(settings: Settings) -> int:
    backend = make_backend(settings)
    if not is_loopback(settings.host) and settings.token is None:
        print(f"fieldllm serve: listening on {settings.host} without a token: anyone on the network can use the "
              "model (set FIELDLLM_TOKEN to require one)")
    uvicorn.run(create_app(settings, backend), host=settings.host, port=settings.port, log_level=settings.log_level,
                # a stream is a long response, not an idle connection; these bound idle and shutdown waits only
                timeout_keep_alive=5, timeout_graceful_shutdown=10)
    return 0
