"""OpenAI's structured-output fields -> a grammar, and tool calls in and out of the model's text.

app/engine/structured.js is the same code for the browser engine; docs/STRUCTURED.md states the rules:

- ``response_format`` ``{"type": "json_schema", "json_schema": {"schema": ...}}``: one JSON value of the schema.
  ``{"type": "json_object"}``: one JSON object. ``{"type": "text"}`` or absent: free text.
- ``tools`` with ``tool_choice``:
  - ``"none"``: the tools are not shown to the model and no call is made (free text).
  - ``"auto"`` (the default when there are tools): free text, in which calls may appear.
  - ``"required"``: one or more calls and nothing else; ``{"type": "function", "function": {"name": N}}``: calls
    of N only.
  A call is ``<tool_call>\\n{"name": "N", "arguments": {...}}\\n</tool_call>`` (the form Qwen2.5's template teaches;
  other models are taught it by the generic block in chat_template.py), its arguments held to the function's
  ``parameters`` schema by the grammar. One call per answer unless ``parallel_tool_calls`` is true: OpenAI's default
  is true, but small models asked for "one or more" repeat the same call until max_tokens.
- Earlier turns' calls and results (assistant ``tool_calls``, ``tool`` messages) are written back in that same form:
  calls into the assistant's text, results as a user turn in ``<tool_response>`` tags, as Qwen2.5's template does.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .grammar import GrammarSpec, check_schema

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


@dataclass(frozen=True)
class Structure:
    """What one request asks of the output's shape."""

    grammar: GrammarSpec | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # shown to the model (empty for tool_choice "none")
    calls_tools: bool = False  # the output may hold tool calls (parse them out)


def from_request(response_format: Any = None, tools: Any = None, tool_choice: Any = None,
                 parallel_tool_calls: bool | None = None) -> Structure:
    """The grammar and the tools to show, from an OpenAI request's fields (already type-checked by the caller)."""
    tools = list(tools or [])
    if response_format and response_format.get("type") not in (None, "text") and tools and tool_choice != "none":
        raise InputError("response_format and tools cannot be combined; send one of them (or tool_choice 'none')")
    if tools:
        return _tools(tools, tool_choice, parallel_tool_calls is True)
    if tool_choice not in (None, "none", "auto"):
        raise InputError("tool_choice needs tools: send the functions the model may call")
    return Structure(grammar=response_format_grammar(response_format))


def response_format_grammar(response_format: Any) -> GrammarSpec | None:
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return GrammarSpec.json_schema({"type": "object"})
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema", {"type": "object"}) if isinstance(spec, dict) else None
        if not isinstance(schema, (dict, bool)):
            raise InputError("response_format.json_schema.schema must be a JSON Schema object")
        return GrammarSpec.json_schema(schema)
    raise InputError(f"response_format type {kind!r} is not one of text, json_object, json_schema")


def _tools(tools: list[dict[str, Any]], choice: Any, parallel: bool) -> Structure:
    names = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise InputError(f"tools.{i} must be {{'type': 'function', 'function': {{'name': ..., 'parameters': "
                             "...}}")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", fn["name"]):
            raise InputError(f"tools.{i}.function.name must be 1-64 letters, digits, _ or -")
        check_schema(fn.get("parameters", {"type": "object"}), f"tools.{i}.function.parameters")
        names.append(fn["name"])
    if len(set(names)) != len(names):
        raise InputError("tools name the same function twice")
    if choice == "none":
        return Structure()
    chosen = names
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise InputError(f"tool_choice names the function {name!r}, which is not among the tools")
        chosen = [name]
    elif choice not in (None, "auto", "required"):
        raise InputError("tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'function': "
                         "{'name': ...}}")
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    tags = [{"type": "tag", "begin": f'{CALL_OPEN}\n{{"name": "{n}", "arguments": ',
             "content": {"type": "json_schema", "json_schema": by_name[n].get("parameters", {"type": "object"})},
             "end": f"}}\n{CALL_CLOSE}"} for n in chosen]
    if choice in (None, "auto"):
        fmt: dict[str, Any] = {"type": "triggered_tags", "triggers": [CALL_OPEN], "tags": tags,
                               "at_least_one": False, "stop_after_first": not parallel}
    else:  # calls and nothing else
        fmt = {"type": "tags_with_separator", "tags": tags, "separator": "\n", "at_least_one": True,
               "stop_after_first": not parallel}
    return Structure(GrammarSpec.structural_tag({"type": "structural_tag", "format": fmt}), tools, True)


# --- the model's text <-> OpenAI's tool_calls ---------------------------------------------------------------------

def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def split_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """(the text outside calls, stripped; the calls as OpenAI's ``tool_calls``). A call whose JSON does not parse
    stays in the text (the grammar makes that impossible for constrained output)."""
    calls: list[dict[str, Any]] = []
    rest: list[str] = []
    last = 0
    for m in _CALL.finditer(text):
        call = parse_call(m.group(1))
        if call is None:
            continue
        rest.append(text[last:m.start()])
        last = m.end()
        calls.append(call)
    rest.append(text[last:])
    return "".join(rest).strip(), calls


def parse_call(body: str) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    args = value.get("arguments", {})
    return {"id": new_call_id(), "type": "function",
            "function": {"name": value["name"], "arguments": json.dumps(args, ensure_ascii=False)}}


class CallStream:
    """Splits streamed text into content pieces and whole tool calls, holding back what may be a call's start."""

    def __init__(self) -> None:
        self.buffer = ""

    def push(self, text: str) -> list[str | dict[str, Any]]:
        self.buffer += text
        out: list[str | dict[str, Any]] = []
        while True:
            start = self.buffer.find(CALL_OPEN)
            if start < 0:
                keep = _partial_suffix(self.buffer, CALL_OPEN)
                if len(self.buffer) > keep:
                    out.append(self.buffer[: len(self.buffer) - keep])
                    self.buffer = self.buffer[len(self.buffer) - keep:]
                return out
            if start > 0:
                out.append(self.buffer[:start])
                self.buffer = self.buffer[start:]
            end = self.buffer.find(CALL_CLOSE)
            if end < 0:
                return out
            body = self.buffer[len(CALL_OPEN):end]
            call = parse_call(body.strip())
            out.append(call if call is not None else self.buffer[: end + len(CALL_CLOSE)])
            self.buffer = self.buffer[end + len(CALL_CLOSE):].lstrip("\n") if call is not None else \
                self.buffer[end + len(CALL_CLOSE):]

    def flush(self) -> list[str | dict[str, Any]]:
        rest, self.buffer = self.buffer, ""
        return [rest] if rest else []


def _partial_suffix(text: str, marker: str) -> int:
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:n]):
            return n
    return 0


def history_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI messages with tool calls and results -> plain {role, content} turns in the call form above."""
    out: list[dict[str, str]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content") or ""
        if role == "assistant" and m.get("tool_calls"):
            parts = [content] if content else []
            for call in m["tool_calls"]:
                fn = call.get("function", {})
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:  # written back as the string it is: the model sees what was sent
                    args = fn.get("arguments")
                parts.append(f'{CALL_OPEN}\n{json.dumps({"name": fn.get("name"), "arguments": args})}\n{CALL_CLOSE}')
            out.append({"role": "assistant", "content": "\n".join(parts)})
        elif role == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{content}\n</tool_response>"})
        else:
            out.append({"role": str(role), "content": content})
    return out
