"""OpenAI-style errors: every non-2xx answer has the body ``{"error": {"message", "type", "param", "code"}}``.

Clients (the official SDKs, the app) read ``error.message``; ``code`` is machine-readable where OpenAI defines one
(``invalid_api_key``, ``model_not_found``, ``context_length_exceeded``...).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("fieldllm.serve")

# The type OpenAI uses for each status (clients mostly branch on the status itself)
_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
          404: "invalid_request_error", 405: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error",
          429: "rate_limit_error", 502: "upstream_error", 504: "upstream_error"}


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class APIError(Exception):
    """Raised anywhere below an endpoint; becomes the JSON answer (status, OpenAI-style body, extra headers)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.message, self.type, self.param, self.code), self.status, self.headers)


class ClientGone(Exception):
    """The client hung up while we were waiting or generating for it; nobody is left to answer."""


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return exc.response()


async def on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown path, wrong method) in the same shape as ours."""
    assert isinstance(exc, HTTPException)
    message = {404: f"nothing at {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
    if exc.status_code in (204, 304):  # bodiless statuses raised by static files
        return Response(status_code=exc.status_code, headers=exc.headers)
    return APIError(exc.status_code, message.get(exc.status_code, str(exc.detail)), headers=exc.headers).response()


async def on_client_gone(request: Request, exc: Exception) -> Response:
    # 499 (nginx's "client closed request"): never delivered, but it is what the access log shows
    return Response(status_code=499)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: log the traceback, answer 500 in the usual shape (Starlette's ServerErrorMiddleware calls this)."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body("internal server error; see the server log", "server_error"), 500)
