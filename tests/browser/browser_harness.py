"""What the browser tests share: a static server on 127.0.0.1, the Playwright page wrapper, Chromium's flags.

The server's root is a temporary folder of symlinks: /app, /webgpu_shaders, /node_modules (the project's own),
/harness (tests/browser/www: the test page) and /models/NAME (packages prepared for the tests). Chromium's WebGPU runs
on SwiftShader (a CPU adapter, no shader-f16) with the flags below; Playwright never downloads a browser here.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]

HOST = "127.0.0.1"
MIME = {".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json", ".wgsl": "text/plain",
        ".bin": "application/octet-stream", ".html": "text/html"}


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map: ClassVar[dict[str, str]] = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not every GET
        pass


@dataclass
class Site:
    root: Path  # the folder served
    url: str  # http://127.0.0.1:PORT
    models: dict[str, Path] = field(default_factory=dict)

    def add_model(self, name: str, package: Path) -> str:
        """Serve a package folder at /models/NAME/; returns NAME."""
        link = self.root / "models" / name
        if not link.exists():
            link.parent.mkdir(exist_ok=True)
            link.symlink_to(package, target_is_directory=True)
        self.models[name] = package
        return name


@dataclass
class Harness:
    """The test page, with every request it (or its worker) made and what it logged."""

    page: Any
    site: Site
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def call(self, fn: str, *args: Any) -> Any:
        """window.harness.fn(...args), awaited; JSON in, JSON out."""
        return self.page.evaluate(f"(args) => window.harness.{fn}(...args)", list(args))

    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if urlsplit(u).scheme not in ("data", "blob")
                and (urlsplit(u).hostname != HOST or not u.startswith(self.site.url))]

    def log(self) -> str:
        return "\n".join(self.console[-40:])


def reference_engine(package: Path, kv_f16: bool = True) -> Any:
    """model_prep's numpy engine over a package (the ground truth), with its KV cache rounded as the WebGPU engine's
    f16 cache (forward.py kv_f16), so the WebGPU engine's greedy ids equal its own; ``kv_f16=False`` for the CPU
    engine, whose cache is f32."""
    from model_prep.reference import load

    return load(package, kv_f16=kv_f16)


def kv_f16_for(load: Mapping[str, Any]) -> bool:
    """Whether the engine that loadEngine options ``load`` start keeps an f16 KV cache: WebGPU (the page's default)
    does, the CPU engine ("engine": "cpu") keeps f32."""
    return load.get("engine", "webgpu") != "cpu"


def start_server(root: Path, headers: Mapping[str, str] | None = None) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve `root` on 127.0.0.1 (a free port) from a daemon thread, with `headers` on every answer (e.g. the app's
    security headers, or cross-origin isolation); returns the server and its base URL."""
    extra = dict(headers or {})

    class Handler(_Handler):
        def end_headers(self) -> None:
            for name, value in extra.items():
                self.send_header(name, value)
            super().end_headers()

    server = http.server.ThreadingHTTPServer((HOST, 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{HOST}:{server.server_address[1]}"


def assert_greedy_matches_reference(harness: Harness, name: str, load: dict[str, Any]) -> dict[str, Any]:
    """Loads package `name` in the page's engine with `load` options and checks its greedy token ids against the
    reference engine's (its KV cache f16 or f32 as the engine's: kv_f16_for) for the shared chats (tests/chats.py):
    the prompt ids, then STEPS tokens each. Returns the engine's info."""
    from chats import CHATS, STEPS

    from model_prep.reference.sampling import Sampler

    ref = reference_engine(harness.site.models[name], kv_f16_for(load))
    info: dict[str, Any] = harness.call("loadEngine", name, load)
    assert info["model"] == ref.name, info
    lengths = []
    for messages in CHATS:
        prompt = ref.prompt_ids(messages)
        assert harness.call("promptIds", messages) == prompt, "template + tokenizer differ from Python's"
        expected = list(ref.generate_ids(prompt, STEPS, Sampler()))
        got = harness.call("generateIds", prompt, STEPS)
        assert got == expected, f"{messages[-1]['content'][:40]!r}: {ref.decode(got)!r} vs {ref.decode(expected)!r}"
        lengths.append(len(expected))
    # the pump and triage answers are long; "Paris." ends at EOS early, and must end there on both sides alike
    assert lengths[:2] == [STEPS, STEPS], lengths
    return info


def assert_logits_match_reference(harness: Harness, name: str, load: dict[str, Any]) -> dict[str, Any]:
    """Loads package `name` (a tiny random model) with `load` options (passTokens 128) and checks its logits against
    the reference engine's (KV cache as the engine's: kv_f16_for) within 1e-3: a prefill, a decode step, and a prompt
    longer than one prefill pass. Returns the engine's info (with the kernel tuning it ran)."""
    import numpy as np

    ref = reference_engine(harness.site.models[name], kv_f16_for(load))
    info: dict[str, Any] = harness.call("loadEngine", name, load)
    prompt = ref.prompt_ids([{"role": "user", "content": "The pump bearing runs hot at 78 degrees; what now?"}])
    long = ref.prompt_ids([{"role": "user", "content": "Generator 2 tripped on overcurrent. " * 12}])
    assert len(long) > 128, "the long prompt must take more than one prefill pass (128 tokens)"

    def compare(ids: list[int], pos: int, what: str) -> None:
        expected = ref.logits(ids, pos)
        got = np.asarray(harness.call("logits", ids, pos), np.float32)
        assert got.shape == expected.shape
        err = float(np.abs(got - expected).max())
        assert err <= 1e-3, f"{what}: max abs error {err:.2e} (logits scale {float(np.abs(expected).max()):.2f})"

    compare(prompt, 0, "prefill")
    compare([int(np.argmax(ref.logits(prompt, 0)))], len(prompt), "decode step")
    compare(long, 0, "long prefill")
    return info
