"""The OpenAPI 3.1 document at /openapi.json, generated from the pydantic models in ``schemas.py``."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from .schemas import ChatCompletion, ChatCompletionChunk, ChatRequest, ErrorResponse, Health, ModelList

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "invalid request: malformed JSON, a wrong type or value, an unsupported parameter, a prompt too long",
    "401": "missing or wrong bearer token (when the server has one)",
    "403": "a page from an origin that is not allowed",
    "404": "unknown model",
    "405": "a method the endpoint does not take",
    "413": "request body too large",
    "415": "the body is not sent as Content-Type: application/json",
    "429": "the model's queue is full or the wait was too long; see Retry-After",
    "502": "the upstream server failed (--upstream only)",
    "504": "the upstream server timed out (--upstream only)",
}


def _ref(model: type) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


# one server-sent event of a stream: a chunk, an error (after a 200 it can only be told this way), or the end
_EVENT = {
    "type": "object", "required": ["data"],
    "properties": {"data": {"anyOf": [
        {"const": "[DONE]"},
        {"type": "string", "contentMediaType": "application/json",
         "contentSchema": {"anyOf": [_ref(ChatCompletionChunk), _ref(ErrorResponse)]}},
    ]}},
}


def _json(model: type) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _errors(*codes: str) -> dict[str, Any]:
    return {c: {"description": _ERRORS[c], "content": _json(ErrorResponse)} for c in codes}


def document(model_ids: list[str] | None, max_tokens: int, version: str, token: bool) -> dict[str, Any]:
    """The schema of this server as configured: ``model`` is one of ``model_ids`` when they are known up front, the
    answer length is capped at ``max_tokens``, and /v1/ needs a bearer token only when ``token`` is set."""
    _, top = models_json_schema(
        [(ChatRequest, "validation"), (ChatCompletion, "serialization"), (ChatCompletionChunk, "serialization"),
         (ModelList, "serialization"), (ErrorResponse, "serialization"), (Health, "serialization")],
        ref_template=_REF)
    schemas = top["$defs"]
    request = schemas["ChatRequest"]["properties"]
    if model_ids:
        request["model"]["enum"] = model_ids
    for name in ("max_tokens", "max_completion_tokens"):
        next(t for t in request[name]["anyOf"] if t.get("type") == "integer")["maximum"] = max_tokens
    bearer: list[dict[str, list[str]]] = [{"bearer": []}] if token else []
    return {
        "openapi": "3.1.0",
        "info": {"title": "fieldllm fallback API", "version": version,
                 "description": "OpenAI-compatible chat completions for devices without WebGPU."},
        "components": {"schemas": schemas,
                       **({"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}} if token else {})},
        "paths": {
            "/v1/chat/completions": {"post": {
                "operationId": "createChatCompletion",
                "summary": "Answer a conversation (streamed as server-sent events when stream is true)",
                "security": bearer,
                "requestBody": {"required": True, "content": _json(ChatRequest)},
                "responses": {
                    "200": {"description": "the answer; with stream: true, `data: {ChatCompletionChunk}` events "
                                           "ending with `data: [DONE]`",
                            "content": {**_json(ChatCompletion), "text/event-stream": {"schema": _EVENT}}},
                    **_errors(*(["401"] if token else []), "400", "403", "404", "405", "413", "415", "429", "502",
                              "504"),
                },
            }},
            "/v1/models": {"get": {
                "operationId": "listModels", "summary": "The models this server answers with", "security": bearer,
                "responses": {"200": {"description": "the models", "content": _json(ModelList)},
                              **_errors(*(["401"] if token else []), "403", "405", "502", "504")},
            }},
            "/healthz": {"get": {
                "operationId": "health", "summary": "Liveness and queue occupancy (no token needed)",
                "responses": {"200": {"description": "the server is up", "content": _json(Health)},
                              **_errors("403", "405")},
            }},
        },
    }
