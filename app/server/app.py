"""``create_app``: the one place where the pieces are put together.

Middleware, outermost first: security headers on every answer (errors included), the Host check, CORS (its
preflights must not need the token), the bearer token; then the routes: the API, the CA download and its
instructions for devices on the network (lan.py), and the app folder for the rest.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from .api import Api, Backend
from .auth import BearerAuth
from .cors import Cors
from .errors import APIError, ClientGone, on_api_error, on_client_gone, on_http_exception, on_unexpected
from .headers import SecurityHeaders, build_script_hashes
from .hosts import HostCheck
from .lan import CaRoutes, Lan
from .settings import Settings
from .static import AppFiles

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def create_app(settings: Settings, backend: Backend, lan: Lan | None = None) -> Starlette:
    """``backend`` is ready (the model loaded): a missing package is reported before the server starts. ``lan``:
    the HTTPS set-up, read from ``settings`` when not given."""
    api = Api(settings, backend)
    lan = lan if lan is not None else Lan.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await backend.aclose()  # the backend may serve again after: a new lifespan reopens what it needs

    routes = [
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/healthz", api.health, methods=["GET"]),
        Route("/openapi.json", api.openapi, methods=["GET"]),
        Route("/v1/{rest:path}", api.not_found, methods=ALL_METHODS),
        *CaRoutes(lan).routes(),
        Mount("/", app=AppFiles(settings.dist)),
    ]
    middleware = [
        Middleware(SecurityHeaders, script_hashes=build_script_hashes(settings.dist)),
        Middleware(HostCheck, allowed=settings.allowed_hosts(lan.cert_names)),
        Middleware(Cors, allow_origins=settings.allow_origin),
        Middleware(BearerAuth, token=settings.token),
    ]
    handlers = {APIError: on_api_error, ClientGone: on_client_gone, HTTPException: on_http_exception,
                Exception: on_unexpected}
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
