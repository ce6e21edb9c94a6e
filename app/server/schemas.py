"""The wire format: pydantic models of what /v1/ accepts and answers (the OpenAPI schema is generated from these).

Requests are strict (no "1" for 1, no unknown fields), like OpenAI's own API. OpenAI parameters that this server does
not implement yet are declared with only their "off" values, so that the published schema is exact; ``parse.py``
refuses other values by name with a clear 400 (see ``UNSUPPORTED`` there).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

MAX_STOP = 4  # OpenAI's limit on stop sequences
MAX_MESSAGES = 1000

_STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def _whole(value: Any) -> Any:
    # JSON Schema counts 1000.0 as an integer, and so do some clients' encoders; strict pydantic would not
    return int(value) if isinstance(value, float) and value.is_integer() else value


Whole = BeforeValidator(_whole)
TokenCount = Annotated[int, Field(ge=1, le=(1 << 31) - 1), Whole]


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = _STRICT
    # "developer" is what newer OpenAI clients send in place of "system"; tool messages come with tools, later
    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]
    name: str | None = None
    # tool calls come with tools, later: only their absence is accepted (parse.py refuses them by name)
    tool_calls: None = None
    function_call: None = None
    refusal: str | None = None

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ResponseFormatText(BaseModel):
    model_config = _STRICT
    type: Literal["text"]


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # sent by some clients; there is nothing to obfuscate here


class ChatRequest(BaseModel):
    model_config = _STRICT
    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: Annotated[int, Field(ge=-(1 << 63), le=(1 << 64) - 1), Whole] | None = None
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP)] | None = None
    n: Annotated[int, Field(ge=1, le=1), Whole] | None = None  # one answer per request
    # accepted and ignored: bookkeeping fields with no effect on the answer
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    # OpenAI features not implemented yet. The types admit only their "off" values, so the schema says exactly what
    # is accepted; parse.UNSUPPORTED refuses anything else by name, before these types are checked.
    tools: Annotated[list[Any], Field(max_length=0)] | None = None
    tool_choice: Literal["none"] | None = None
    parallel_tool_calls: bool | None = None
    functions: Annotated[list[Any], Field(max_length=0)] | None = None
    function_call: Literal["none"] | None = None
    response_format: ResponseFormatText | None = None
    logprobs: Literal[False] | None = None
    top_logprobs: None = None
    logit_bias: Annotated[dict[str, Any], Field(max_length=0)] | None = None
    frequency_penalty: float | None = Field(None, ge=0, le=0)
    presence_penalty: float | None = Field(None, ge=0, le=0)
    audio: None = None
    modalities: list[Literal["text"]] | None = None
    prediction: None = None
    reasoning_effort: None = None
    verbosity: None = None
    web_search_options: None = None


# --- answers ---------------------------------------------------------------------------------------------------------

FinishReason = Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer (``data: {...}``); the stream ends with ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    backend: Literal["numpy", "upstream"]
    models: list[str]
    busy: int = Field(description="requests admitted now (running or queued)")
    capacity: int = Field(description="requests admitted at most; more get 429")
