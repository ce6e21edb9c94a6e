"""Answer only to expected Host names: a page on the internet cannot reach a loopback server through DNS rebinding.

Rebinding makes the attacker's own domain resolve to 127.0.0.1 (or to a LAN address), so the browser treats the API as
same-origin and CORS does not help; the Host header still carries the attacker's name, and that is what is checked
here. An IP address in Host is always accepted: rebinding needs a name, and a page that names the server's address
is on the server's own origin (or is cross-origin, which CORS handles).
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import APIError


def host_name(host_header: str) -> str:
    """``Host`` without its port: ``[::1]:8000`` -> ``::1``, ``example.org:80`` -> ``example.org``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class HostCheck:
    def __init__(self, app: ASGIApp, allowed: frozenset[str] | None):
        self.app = app
        self.allowed = allowed  # None: any host (--allow-host '*')

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.allowed is not None:
            name = host_name(Headers(scope=scope).get("host", ""))
            if name not in self.allowed and not is_address(name):
                error = APIError(400, f"this server does not answer to the host name {name!r}; start it with "
                                      f"--allow-host {name or 'NAME'} if that is intended", code="invalid_host")
                return await error.response()(scope, receive, send)
        await self.app(scope, receive, send)
