"""The engine's chunks -> OpenAI's answer: content or tool calls, logprobs, and the check that a structured answer
fits what was asked (the grammar makes it so; this is the second lock, and it never lets a misfit through)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema

from model_prep.reference import Chunk
from model_prep.reference.structured import CallStream, Structure, split_tool_calls

from .errors import APIError
from .schemas import ChoiceLogprobs, FinishReason, FunctionCall, TokenLogprob, ToolCall, ToolCallDelta, TopLogprob

Decode = Callable[[Sequence[int]], str]


def logprobs(chunk: Chunk, decode: Decode) -> ChoiceLogprobs | None:
    if not chunk.logprobs:
        return None

    def top(token: int, logprob: float) -> TopLogprob:
        text = decode([token])
        return TopLogprob(token=text, logprob=logprob, bytes=list(text.encode()))

    content = []
    for p in chunk.logprobs:
        chosen = top(p.token, p.logprob)
        content.append(TokenLogprob(token=chosen.token, logprob=chosen.logprob, bytes=chosen.bytes,
                                    top_logprobs=[top(t, lp) for t, lp in p.top]))
    return ChoiceLogprobs(content=content)


def merge_logprobs(parts: list[ChoiceLogprobs | None]) -> ChoiceLogprobs | None:
    content = [t for p in parts if p is not None for t in p.content or []]
    return ChoiceLogprobs(content=content) if any(p is not None for p in parts) else None


def final_message(text: str, finish: FinishReason, structure: Structure) \
        -> tuple[str | None, list[ToolCall] | None, FinishReason]:
    """(content, tool_calls, finish_reason) of a whole answer, checked against ``structure`` when it is complete."""
    if structure.calls_tools:
        content, calls = split_tool_calls(text)
        if finish == "stop":
            check_calls(calls, structure)
        tool_calls = [ToolCall.model_validate(c) for c in calls] or None
        return content or None, tool_calls, "tool_calls" if tool_calls and finish == "stop" else finish
    if finish == "stop":
        check_content(text, structure)
    return text, None, finish


def check_content(text: str, structure: Structure) -> None:
    """A complete structured answer must parse and fit its schema; if not, the client gets an error, not it."""
    g = structure.grammar
    if g is None or g.kind != "json_schema":
        return
    try:
        jsonschema.validate(json.loads(text), json.loads(g.body))
    except (ValueError, jsonschema.ValidationError, jsonschema.SchemaError) as e:
        raise APIError(500, f"the answer does not fit the requested schema ({_first_line(e)}); it was withheld",
                       type="server_error",
                       code="invalid_output") from None


def check_calls(calls: list[dict[str, Any]], structure: Structure) -> None:
    params = {t["function"]["name"]: t["function"].get("parameters") or {"type": "object"} for t in structure.tools}
    for call in calls:
        fn = call["function"]
        try:
            if fn["name"] not in params:
                raise ValueError(f"it calls {fn['name']!r}, which is not among the tools")
            jsonschema.validate(json.loads(fn["arguments"]), params[fn["name"]])
        except (ValueError, jsonschema.ValidationError, jsonschema.SchemaError) as e:
            raise APIError(500, f"a tool call does not fit its function ({_first_line(e)}); it was withheld",
                           type="server_error",
                       code="invalid_output") from None


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


class DeltaSplitter:
    """Streamed text -> content deltas and whole tool-call deltas (each call in one delta, numbered from 0)."""

    def __init__(self, structure: Structure):
        self.calls = CallStream() if structure.calls_tools else None
        self.index = 0
        self.text: list[str] = []  # everything the model wrote, for the final check

    def push(self, text: str, final: bool = False) -> list[tuple[str | None, ToolCallDelta | None]]:
        self.text.append(text)
        if self.calls is None:
            return [(text, None)] if text else []
        parts = self.calls.push(text) + (self.calls.flush() if final else [])
        out: list[tuple[str | None, ToolCallDelta | None]] = []
        for part in parts:
            if isinstance(part, str):
                if part:
                    out.append((part, None))
            else:
                out.append((None, ToolCallDelta(index=self.index, id=part["id"], type="function",
                                                function=FunctionCall.model_validate(part["function"]))))
                self.index += 1
        return out
