"""Security headers on every answer: a Content-Security-Policy the app works under without inline scripts.

The policy allows only the app's own origin. ``'wasm-unsafe-eval'`` lets the app compile WebAssembly (tokenizer,
grammar engine) without allowing JS eval; ``worker-src 'self'`` covers the engine's Web Worker and the service worker;
``connect-src 'self'`` covers the fallback API and the model shards. The one inline script is the page's import map:
its hash comes from the build (build-info.json ``script_hashes``), so that bare imports such as the field code's
validator resolve. No other inline scripts or styles: put them in files.
COOP ``same-origin`` and COEP ``require-corp`` make the page cross-origin isolated, which is what gives it
SharedArrayBuffer: the CPU engine's threads (app/engine/cpu/threads.js) share one wasm memory. The app loads nothing
cross-origin, so they cost it nothing. Every answer carries them, since a worker script without COEP would be refused
by an isolated page. The service worker adds the same two to the shell it serves (service_worker/sw.js), so that an
app installed from a plain static host is isolated from its second start on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def content_security_policy(script_hashes: Sequence[str] = ()) -> str:
    return "; ".join(["default-src 'self'", " ".join(["script-src 'self' 'wasm-unsafe-eval'", *script_hashes]),
                      *_REST])


def build_script_hashes(dist: Path) -> list[str]:
    """The CSP hashes of the built page's inline scripts (its import map), or none if there is no readable build."""
    try:
        hashes = json.loads((dist / "build-info.json").read_text()).get("script_hashes", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [h for h in hashes if isinstance(h, str) and h.startswith("'sha256-") and "'" not in h[1:-1]]


_REST = [
    "worker-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data: blob:",
    "style-src 'self'",
    "font-src 'self'",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]
CONTENT_SECURITY_POLICY = content_security_policy()  # with no build's import map
# the two headers that make a page cross-origin isolated (sw.js's ISOLATION_HEADERS are the same)
CROSS_ORIGIN_ISOLATION = {"cross-origin-opener-policy": "same-origin", "cross-origin-embedder-policy": "require-corp"}


def security_headers(script_hashes: Sequence[str] = ()) -> dict[str, str]:
    return {"content-security-policy": content_security_policy(script_hashes), "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer", **CROSS_ORIGIN_ISOLATION}


SECURITY_HEADERS = security_headers()


class SecurityHeaders:
    def __init__(self, app: ASGIApp, script_hashes: Sequence[str] = ()):
        self.app = app
        self.headers = security_headers(script_hashes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
