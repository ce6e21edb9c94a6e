"""CORS and Private Network Access for pages on other origins that the user allowed (``--allow-origin``).

- A preflight (OPTIONS with Access-Control-Request-Method) from an allowed origin gets 204 with the CORS headers, and
  ``Access-Control-Allow-Private-Network: true`` when Chrome asks for it (a public or https page calling a server on
  the local network); from any other origin, 403 without them.
- Other requests from an allowed origin get Access-Control-Allow-Origin on the answer (errors included, so the page
  can read them). A request from another origin that is neither allowed nor this server's own is refused with 403
  before it runs: without that, a page anywhere could make the model work through a "simple" POST it cannot read.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import APIError

ALLOW_METHODS = "GET, POST, OPTIONS"
MAX_AGE = "600"  # seconds a browser may reuse a preflight answer
EXPOSE = "Retry-After"


class Cors:
    def __init__(self, app: ASGIApp, allow_origins: tuple[str, ...]):
        self.app = app
        self.any_origin = "*" in allow_origins
        self.origins = frozenset(allow_origins)

    def allowed(self, origin: str) -> bool:
        return self.any_origin or origin.lower() in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or _same_origin(origin, scope, headers):
            return await self.app(scope, receive, send)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            return await self.preflight(origin, headers)(scope, receive, send)
        if not self.allowed(origin):
            error = APIError(403, f"pages from {origin} may not call this server; start it with --allow-origin "
                                  f"{origin} to allow them", code="origin_not_allowed")
            return await error.response()(scope, receive, send)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["access-control-allow-origin"] = origin
                out["access-control-expose-headers"] = EXPOSE
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def preflight(self, origin: str, headers: Headers) -> Response:
        if not self.allowed(origin):
            return APIError(403, f"pages from {origin} may not call this server; start it with --allow-origin "
                                 f"{origin} to allow them", code="origin_not_allowed").response()
        out = {"access-control-allow-origin": origin, "access-control-allow-methods": ALLOW_METHODS,
               "access-control-max-age": MAX_AGE, "vary": "Origin"}
        if requested := headers.get("access-control-request-headers"):
            out["access-control-allow-headers"] = requested  # the origin is trusted: whatever its client sends
        if headers.get("access-control-request-private-network", "").lower() == "true":
            out["access-control-allow-private-network"] = "true"
        return Response(status_code=204, headers=out)


def _same_origin(origin: str, scope: Scope, headers: Headers) -> bool:
    """Browsers send Origin on same-origin POSTs too; those need no CORS and are always fine."""
    scheme = scope.get("scheme", "http")
    return origin.lower() == f"{scheme}://{headers.get('host', '').lower()}"
