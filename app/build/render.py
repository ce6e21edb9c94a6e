"""index.html and the web app manifest, rendered with Jinja2 (autoescape on: every value is escaped for HTML, and
the manifest's values go through `tojson`)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from .icons import ICON_SIZES, THEME


@dataclass(frozen=True)
class AppInfo:
    name: str = "fieldllm assistant"
    short_name: str = "fieldllm"
    description: str = ("An assistant for equipment faults and clinical triage that runs on this device and keeps "
                        "working without a network.")
    theme_color: str = "#{:02x}{:02x}{:02x}".format(*THEME)
    background_color: str = "#ffffff"


def environment(templates: Path) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(templates), autoescape=True,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def import_map_text(imports: dict[str, Any]) -> str:
    """The import map's JSON exactly as it appears inside <script type="importmap"> (HTML-safe: no '<', '>', '&'),
    so that its CSP hash can be computed from the same string."""
    text = json.dumps(imports, indent=1, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def csp_hash(text: str) -> str:
    """The CSP source expression that allows one inline script with exactly this text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def content_security_policy(script_hashes: list[str]) -> str:
    """The policy the server should send with index.html. An inline import map is a script to CSP, so it needs
    its hash next to 'self'; nothing else is inline. 'wasm-unsafe-eval' lets the tokenizer and the grammar engine
    compile their WebAssembly (it allows no JS eval)."""
    return "; ".join([
        "default-src 'self'", "script-src " + " ".join(["'self'", "'wasm-unsafe-eval'", *script_hashes]),
        "style-src 'self'",
        "img-src 'self' data:", "connect-src 'self'", "worker-src 'self'", "manifest-src 'self'",
        "object-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
    ])


def render_index(env: jinja2.Environment, info: AppInfo, import_map: str, build_id: str) -> str:
    return env.get_template("index.html").render(app=info, import_map=import_map, build_id=build_id)


def render_manifest(env: jinja2.Environment, info: AppInfo) -> str:
    text = env.get_template("manifest.webmanifest").render(app=info, icon_sizes=ICON_SIZES)
    json.loads(text)  # a template edit that breaks JSON fails the build, not the install prompt
    return text
