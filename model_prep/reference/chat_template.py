"""Render a model's chat template (Jinja2, sandboxed, the way transformers' apply_chat_template does)."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ..errors import InputError

ROLES = ("system", "user", "assistant")


def _raise(message: str) -> None:
    raise InputError(f"chat template refused the conversation: {message}")


def _tojson(value: Any, indent: int | None = None, separators: tuple[str, str] | None = None,
            sort_keys: bool = False) -> str:
    """transformers' `tojson` (apply_chat_template), not Jinja2's: keys in their order, no ASCII or HTML escaping.
    Templates that render tools (Qwen2.5's) were trained on this form."""
    return json.dumps(value, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)


@lru_cache(maxsize=8)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.globals["raise_exception"] = _raise
    env.filters["tojson"] = _tojson
    env.globals["strftime_now"] = lambda f: datetime.now().strftime(f)
    try:
        return env.from_string(template)
    except jinja2.TemplateError as e:
        raise InputError(f"the package's chat template does not compile ({e}); prepare the package again") from e


def check_messages(messages: Any) -> list[dict[str, str]]:
    """Messages must be a non-empty list of {"role": system|user|assistant, "content": str}."""
    if not isinstance(messages, list) or not messages:
        raise InputError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            raise InputError(f"message {i} must be {{'role': one of {', '.join(ROLES)}, 'content': a string}}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def supports_tools(template: str) -> bool:
    """Whether the template renders a ``tools`` list itself (Qwen2.5's does; SmolLM2's does not)."""
    return "tools" in template


# The generic tool block (docs/STRUCTURED.md), for templates that do not render tools: added to the system message.
# Calls take the Hermes / Qwen2.5 form, which the grammar then enforces (model_prep/reference/structured.py).
TOOLS_INTRO = ("You can call functions. To call one, answer with <tool_call>{\"name\": NAME, \"arguments\": "
               "ARGUMENTS}</tool_call> where ARGUMENTS is a JSON object that fits the function's parameters. "
               "The functions:")


def generic_tools_block(tools: list[dict[str, Any]]) -> str:
    lines = [TOOLS_INTRO]
    for tool in tools:
        lines.append(json.dumps(tool.get("function", tool), ensure_ascii=False))
    return "\n".join(lines)


def with_tools_block(messages: list[dict[str, str]], tools: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``messages`` with the generic tool block at the end of the system message (added first if there is none)."""
    block = generic_tools_block(tools)
    if messages and messages[0].get("role") == "system":
        return [{"role": "system", "content": f"{messages[0]['content']}\n\n{block}"}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]


def render(template: str, messages: list[dict[str, str]], bos_token: str = "", eos_token: str = "",
           add_generation_prompt: bool = True, tools: list[dict[str, Any]] | None = None) -> str:
    """The prompt text; ``tools`` (OpenAI tool definitions) go to the template if it renders them, else into the
    generic block of the system message."""
    extra: dict[str, Any] = {}
    if tools and supports_tools(template):
        extra["tools"] = tools
    elif tools:
        messages = with_tools_block(check_messages(messages), tools)
    return _compile(template).render(messages=check_messages(messages), bos_token=bos_token, eos_token=eos_token,
                                     add_generation_prompt=add_generation_prompt, **extra)
