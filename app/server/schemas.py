"""The wire format: pydantic models of what /v1/ accepts and answers (the OpenAPI schema is generated from these).

Requests are strict (no "1" for 1, no unknown fields), like OpenAI's own API. OpenAI parameters that this server does
not implement are declared with only their "off" values, so that the published schema is exact; ``parse.py``
refuses other values by name with a clear 400 (see ``UNSUPPORTED`` there). ``top_k`` and ``min_p`` are not OpenAI's
but llama.cpp's and vLLM's servers take them too.
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
TokenIdKey = Annotated[str, Field(pattern=r"^[0-9]{1,9}$")]  # logit_bias keys: token ids, as OpenAI writes them


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64)
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(BaseModel):
    model_config = _STRICT
    id: str = Field(max_length=256)
    type: Literal["function"]
    function: FunctionCall


class Message(BaseModel):
    model_config = _STRICT
    # "developer" is what newer OpenAI clients send in place of "system"; "tool" carries a tool call's result
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | Annotated[list[TextPart], Field(min_length=1)] | None = None
    name: str | None = None
    tool_calls: Annotated[list[ToolCall], Field(max_length=128)] | None = None  # an assistant's earlier calls
    tool_call_id: str | None = None  # a tool message: which call it answers
    function_call: None = None  # OpenAI's deprecated single call (parse.py refuses it by name)
    refusal: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class ResponseFormatText(BaseModel):
    model_config = _STRICT
    type: Literal["text"]


class ResponseFormatJSONObject(BaseModel):
    model_config = _STRICT
    type: Literal["json_object"]


class JSONSchemaFormat(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    # JSON Schema (a subset: reference/grammar.py SCHEMA_KEYWORDS); a keyword the grammar cannot enforce is a 400
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None  # output is held to the schema either way (never looser)


class ResponseFormatJSONSchema(BaseModel):
    model_config = _STRICT
    type: Literal["json_schema"]
    json_schema: JSONSchemaFormat


class FunctionDefinition(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema of the arguments (the same subset)
    strict: bool | None = None


class Tool(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = _STRICT
    name: str


class NamedToolChoice(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: NamedFunction


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
    # structured output (model_prep/reference/structured.py)
    response_format: ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # sampling beyond temperature and top_p (model_prep/reference/sampling.py)
    top_k: Annotated[int, Field(ge=0, le=1 << 20), Whole] | None = None
    min_p: float | None = Field(None, ge=0, le=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    # token id -> added to its logit; ids outside the vocabulary have no effect
    logit_bias: Annotated[dict[TokenIdKey, Annotated[float, Field(ge=-100, le=100)]],
                          # patternProperties alone would let other keys through in the published schema
                          Field(max_length=1024, json_schema_extra={"additionalProperties": False})] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20), Whole] | None = None
    # OpenAI features not implemented. The types admit only their "off" values, so the schema says exactly what
    # is accepted; parse.UNSUPPORTED refuses anything else by name, before these types are checked.
    functions: Annotated[list[Any], Field(max_length=0)] | None = None
    function_call: Literal["none"] | None = None
    audio: None = None
    modalities: list[Literal["text"]] | None = None
    prediction: None = None
    reasoning_effort: None = None
    verbosity: None = None
    web_search_options: None = None


# --- answers ---------------------------------------------------------------------------------------------------------

FinishReason = Literal["stop", "length", "tool_calls"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ToolCall] | None = None
    refusal: None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(BaseModel):
    """One generated token; logprob is under the distribution the token was picked from (after logit_bias, the
    penalties and the grammar's mask, before temperature)."""

    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: None = None


class Timings(BaseModel):
    """Not OpenAI's: where the time went, as llama.cpp's server reports it (milliseconds)."""

    prompt_n: int
    prompt_ms: float
    prompt_per_second: float
    predicted_n: int
    predicted_ms: float
    predicted_per_second: float


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None
    timings: Timings | None = None


class ToolCallDelta(BaseModel):
    """A streamed call: this server sends each call whole, in one delta (index, id, type, name and arguments)."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCall | None = None


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed answer (``data: {...}``); the stream ends with ``data: [DONE]``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    timings: Timings | None = None


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
    backend: Literal["native", "numpy", "upstream"]
    models: list[str]
    busy: int = Field(description="requests admitted now (running or queued)")
    capacity: int = Field(description="requests admitted at most; more get 429")
