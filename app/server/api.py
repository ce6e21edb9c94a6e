"""The HTTP endpoints: /v1/chat/completions, /v1/models, /healthz, /openapi.json. Each delegates to the backend."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import openapi
from .errors import APIError
from .parse import Chat, check_content_type, parse_chat, read_body
from .schemas import Health, ModelCard, ModelList
from .settings import Settings


class Backend(Protocol):
    """Where answers come from: the numpy engine (local.py) or another server (upstream.py)."""

    kind: str

    async def chat(self, chat: Chat, request: Request) -> Response: ...

    async def models(self) -> list[ModelCard]: ...

    def model_ids(self) -> list[str] | None: ...

    def health(self) -> Health: ...

    async def aclose(self) -> None: ...


def _version() -> str:
    try:
        return version("fieldllm")
    except PackageNotFoundError:
        return "0"


_ENDPOINTS = {"/v1/chat/completions": "POST", "/v1/models": "GET, HEAD"}  # path -> method, for the 405 answer


class Api:
    def __init__(self, settings: Settings, backend: Backend):
        self.settings = settings
        self.backend = backend
        self._openapi: dict[str, Any] | None = None

    async def chat_completions(self, request: Request) -> Response:
        check_content_type(request)
        body = await read_body(request, self.settings.max_body)
        return await self.backend.chat(parse_chat(body, self.settings.max_tokens), request)

    async def models(self, request: Request) -> Response:
        return JSONResponse(ModelList(data=await self.backend.models()).model_dump())

    async def health(self, request: Request) -> Response:
        return JSONResponse(self.backend.health().model_dump(), headers={"cache-control": "no-store"})

    async def not_found(self, request: Request) -> Response:
        """Anything else under /v1/: a wrong method on a real endpoint (405), or no such endpoint (404)."""
        if allow := _ENDPOINTS.get(request.url.path):
            raise APIError(405, f"{request.method} is not allowed on {request.url.path}; use {allow}",
                           headers={"Allow": allow})
        raise APIError(404, f"no endpoint {request.method} {request.url.path}; this server has "
                            "POST /v1/chat/completions and GET /v1/models", code="unknown_url")

    async def openapi(self, request: Request) -> Response:
        if self._openapi is None:
            self._openapi = openapi.document(self.backend.model_ids(), self.settings.max_tokens, _version(),
                                             self.settings.token is not None)
        return JSONResponse(self._openapi)
