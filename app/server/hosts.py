"""Answer only to expected Host names: a page on the internet cannot reach a loopback server through DNS rebinding.

Rebinding makes the attacker's own domain resolve to 127.0.0.1, so the browser treats the API as same-origin and CORS
does not help; the Host header still carries the attacker's name, and that is what is checked here.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import APIError


def host_name(host_header: str) -> str:
    """``Host`` without its port: ``[::1]:8000`` -> ``::1``, ``example.org:80`` -> ``example.org``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostCheck:
    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None):
        self.app = app
        self.allowed = allowed  # None: any host (the server listens on the network and the user chose no list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            name = host_name(Headers(scope=scope).get("host", ""))
            if name not in self.allowed:
                error = APIError(400, f"this server does not answer to the host name {name!r}; start it with "
                                      f"--allow-host {name or 'NAME'} if that is intended", code="invalid_host")
                return await error.response()(scope, receive, send)
        await self.app(scope, receive, send)
