"""Render a model's chat template (Jinja2, sandboxed, the way transformers' apply_chat_template does)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import InputError

ROLES = ("system", "user", "assistant")


def _raise(message: str) -> None:
    raise InputError(f"chat template refused the conversation: {message}")


@lru_cache(maxsize=8)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.globals["raise_exception"] = _raise
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


def render(template: str, messages: list[dict[str, str]], bos_token: str = "", eos_token: str = "",
           add_generation_prompt: bool = True) -> str:
    return _compile(template).render(messages=check_messages(messages), bos_token=bos_token, eos_token=eos_token,
                                     add_generation_prompt=add_generation_prompt)
