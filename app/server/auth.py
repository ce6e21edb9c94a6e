"""Optional bearer token on the API (/v1/), for a server shared on the local network.

The app shell, /healthz and /openapi.json stay open: the page must load before it can ask for the token. The
comparison is constant-time so the token cannot be guessed byte by byte from response times.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import APIError

PROTECTED_PREFIX = "/v1/"


def token_matches(authorization: str, token: str) -> bool:
    scheme, _, given = authorization.partition(" ")
    # bytes: compare_digest refuses non-ASCII str; header text is the raw bytes read as latin-1
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("latin-1"), token.encode())


class BearerAuth:
    def __init__(self, app: ASGIApp, token: str | None):
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is not None and scope["type"] == "http" and scope["path"].startswith(PROTECTED_PREFIX):
            if not token_matches(Headers(scope=scope).get("authorization", ""), self.token):
                error = APIError(401, "missing or wrong API key: send the header `Authorization: Bearer TOKEN` with "
                                      "the token the server was started with", code="invalid_api_key",
                                 headers={"WWW-Authenticate": "Bearer"})
                return await error.response()(scope, receive, send)
        await self.app(scope, receive, send)
