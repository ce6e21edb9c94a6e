"""Request body -> a validated chat request, or an APIError (400/413) that says which parameter is wrong and why.

Both backends (numpy engine and upstream proxy) go through here, so they accept and refuse exactly the same requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from model_prep.errors import InputError
from model_prep.reference import Decoding
from model_prep.reference.structured import Structure, from_request, history_messages

from .errors import APIError
from .schemas import ChatRequest, Message, StreamOptions, TextPart

# parameter -> (is this value, when not null, asking for the feature?, what to say). Checked on the raw JSON before
# the types, so that {"n": 2} says "n must be 1" rather than "input should be less than or equal to 1".
_LATER = "is not supported by this server yet"
UNSUPPORTED: dict[str, tuple[Any, str]] = {
    "functions": (lambda v: v != [], f"functions {_LATER}; send tools"),
    "function_call": (lambda v: v != "none", f"function_call {_LATER}; send tool_choice"),
    "n": (lambda v: v != 1 or v is True, "n must be 1: this server gives one answer per request"),
    "audio": (lambda v: True, f"audio {_LATER}"),
    "modalities": (lambda v: not isinstance(v, list) or any(m != "text" for m in v),
                   "only the text modality is supported"),
    "prediction": (lambda v: True, f"prediction {_LATER}"),
    "reasoning_effort": (lambda v: True, f"reasoning_effort {_LATER}"),
    "verbosity": (lambda v: True, f"verbosity {_LATER}"),
    "web_search_options": (lambda v: True, "web search is not available (this server works offline)"),
}
MAX_DEPTH = 64  # levels of nested arrays and objects in a body: far more than any real request (a tool's parameter
# schema nests two levels per property), and far less than the recursion that parsing, the chat template and
# jsonschema can afford; deeper bodies get a 400 before anything walks them
_FIELD_NAMES = {name for model in (ChatRequest, Message, TextPart, StreamOptions) for name in model.model_fields}
_UNSUPPORTED_IN_MESSAGES = {"function_call": f"function calls {_LATER}; send tool_calls"}


@dataclass(frozen=True)
class Sampling:
    """What the engine is asked for, after defaults and limits; None = the model's own default."""

    max_tokens: int
    temperature: float | None
    top_p: float | None
    seed: int | None
    stop: list[str]
    decoding: Decoding = field(default_factory=Decoding)  # top_k, min_p, penalties, logit_bias, logprobs, grammar


@dataclass(frozen=True)
class Chat:
    request: ChatRequest
    messages: list[dict[str, str]]  # {"role": system|user|assistant, "content": text}; tool turns written out
    sampling: Sampling
    stream: bool
    include_usage: bool
    structure: Structure = field(default_factory=Structure)  # the grammar and the tools shown to the model

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return self.structure.tools or None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it passes ``limit`` bytes rather than after reading it all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> APIError:
    return APIError(413, f"the request body is larger than this server accepts ({limit} bytes)",
                    code="request_too_large")


def check_content_type(request: Request) -> None:
    """JSON only: a form or text/plain body is what a page on another site can send without a CORS preflight."""
    given = request.headers.get("content-type", "")
    if given.split(";", 1)[0].strip().lower() != "application/json":
        raise APIError(415, f"the body must be JSON sent with Content-Type: application/json (got "
                            f"{given[:100]!r})" if given else "the body must be JSON sent with Content-Type: "
                            "application/json (the request had no Content-Type)", code="unsupported_media_type")


def parse_chat(body: bytes, max_tokens_limit: int) -> Chat:
    _refuse_unsupported(_load(body))
    req = _validate(body)
    messages = history_messages([
        {"role": "system" if m.role == "developer" else m.role, "content": m.text(),
         "tool_calls": [c.model_dump() for c in m.tool_calls] if m.tool_calls else None}
        for m in req.messages])
    stream = bool(req.stream)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    structure = _structure(req)
    sampling = _sampling(req, max_tokens_limit, structure)
    return Chat(req, messages, sampling, stream, include_usage, structure)


def _structure(req: ChatRequest) -> Structure:
    """The grammar the answer must follow; a schema or tool set the grammar cannot honour is a 400, never a looser
    answer."""
    tool_choice = req.tool_choice.model_dump() if req.tool_choice is not None and \
        not isinstance(req.tool_choice, str) else req.tool_choice
    param = "tools" if req.tools else "response_format"
    try:
        return from_request(req.response_format.model_dump(by_alias=True, exclude_none=True)
                            if req.response_format else None,
                            [t.model_dump(exclude_none=True) for t in req.tools] if req.tools else None,
                            tool_choice, req.parallel_tool_calls)
    except InputError as e:
        raise APIError(400, str(e), param=param, code="unsupported_schema") from None


def _load(body: bytes) -> Any:
    """The parsed body, or None if it is not JSON (``_validate`` then says why); too deep a body is a 400 here."""
    try:
        raw = json.loads(body)
    except RecursionError:  # the C parser gives up at about 1000 levels, well past MAX_DEPTH
        raise _too_deep() from None
    except ValueError:
        return None
    if depth(raw) > MAX_DEPTH:
        raise _too_deep()
    return raw


def depth(value: Any) -> int:
    """Levels of nested arrays and objects in a parsed JSON value (0 for a scalar); a loop, not recursion."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, d = level.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, d)
            level.extend((child, d + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _too_deep() -> APIError:
    return APIError(400, f"the body nests arrays and objects more than {MAX_DEPTH} levels deep; this server "
                         "accepts at most that", code="invalid_json")


def _refuse_unsupported(raw: Any) -> None:
    if not isinstance(raw, dict):
        return
    for name, (in_use, message) in UNSUPPORTED.items():
        if raw.get(name) is not None and in_use(raw[name]):
            raise APIError(400, message, param=name, code="unsupported_parameter")
    messages = raw.get("messages")
    for i, m in enumerate(messages if isinstance(messages, list) else []):
        for name, message in _UNSUPPORTED_IN_MESSAGES.items():
            if isinstance(m, dict) and m.get(name) is not None:
                raise APIError(400, message, param=f"messages.{i}.{name}", code="unsupported_parameter")


def _validate(body: bytes) -> ChatRequest:
    try:
        return ChatRequest.model_validate_json(body)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        first = errors[0]
        where = _param(first["loc"])
        if first["type"] == "json_invalid":
            raise APIError(400, f"the body is not valid JSON ({first['msg']})", code="invalid_json") from None
        if first["type"] == "extra_forbidden":
            where = ".".join(filter(None, [_param(first["loc"][:-1]), str(first["loc"][-1])]))
            raise APIError(400, f"unknown parameter {where}", param=where, code="unknown_parameter") from None
        if not where:
            raise APIError(400, f"the body must be a JSON object with model and messages ({first['msg']})") \
                from None
        # a value that fits none of a union's members gets one error per member: say them all
        said = dict.fromkeys(err["msg"] for err in errors if _param(err["loc"]) == where)
        raise APIError(400, f"{where}: {'; or '.join(said)}", param=where, code="invalid_value") from None


def _param(loc: tuple[int | str, ...]) -> str:
    """``("stop", "list[str]", 5)`` -> ``"stop"``: pydantic puts union member names into locations; stop there."""
    names: list[str] = []
    for part in loc:
        if isinstance(part, int) or part in _FIELD_NAMES:
            names.append(str(part))
        else:
            break
    return ".".join(names)


def _sampling(req: ChatRequest, limit: int, structure: Structure) -> Sampling:
    # max_completion_tokens is OpenAI's newer name for max_tokens; when both are given, it wins
    asked = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    if asked is not None and asked > limit:
        raise APIError(400, f"{param} is {asked} but this server allows at most {limit}", param=param,
                       code="invalid_value")
    stop = [s for s in ([req.stop] if isinstance(req.stop, str) else req.stop or []) if s]  # "" never matches
    temperature = req.temperature
    if req.top_p == 0:  # OpenAI accepts 0: only the most likely token survives, which is greedy decoding
        temperature = 0.0
    top_p = None if req.top_p == 0 else req.top_p
    seed = None if req.seed is None else req.seed % (1 << 64)  # numpy seeds must be >= 0; keep distinct seeds apart
    if req.top_logprobs and not req.logprobs:
        raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs", code="invalid_value")
    bias: dict[int, float] = {}
    for key, value in (req.logit_bias or {}).items():
        if not key.isdigit():
            raise APIError(400, f"logit_bias keys must be token ids, got {key!r}", param="logit_bias",
                           code="invalid_value")
        bias[int(key)] = value
    decoding = Decoding(top_k=req.top_k or 0, min_p=req.min_p or 0.0, frequency_penalty=req.frequency_penalty or 0.0,
                        presence_penalty=req.presence_penalty or 0.0, logit_bias=bias, logprobs=bool(req.logprobs),
                        top_logprobs=req.top_logprobs or 0, grammar=structure.grammar)
    return Sampling(asked if asked is not None else limit, temperature, top_p, seed, stop, decoding)
