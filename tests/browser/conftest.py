"""Browser test fixtures: the local site (app/, webgpu_shaders/, node_modules/, the harness page, model packages),
Debian's Chromium driven by Playwright, and a fresh harness page per test that fails the test if any request leaves
127.0.0.1. See browser_harness.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import HOST, ROOT, Harness, Site, start_server


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not (ROOT / "node_modules" / "@huggingface" / "tokenizers").is_dir():
        pytest.fail("node_modules is missing: run `npm ci` in the project root first")
    root = tmp_path_factory.mktemp("www")
    for name, target in [("app", ROOT / "app"), ("webgpu_shaders", ROOT / "webgpu_shaders"),
                         ("node_modules", ROOT / "node_modules"), ("harness", Path(__file__).parent / "www")]:
        (root / name).symlink_to(target, target_is_directory=True)
    server, url = start_server(root)
    yield Site(root, url)
    server.shutdown()
    server.server_close()


@pytest.fixture
def harness(browser: Any, site: Site) -> Iterator[Harness]:
    """A fresh page on the harness; fails the test if any request went anywhere but the local server."""
    context = browser.new_context()
    page = context.new_page()
    h = Harness(page, site)
    context.on("request", lambda r: h.requests.append(r.url))
    page.on("console", lambda m: h.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: h.console.append(f"pageerror: {e}"))
    page.set_default_timeout(120_000)
    page.goto(f"{site.url}/harness/harness.html")
    page.wait_for_function("window.harness !== undefined", timeout=30_000)
    yield h
    context.close()
    assert not h.foreign_requests(), f"requests left {HOST}: {h.foreign_requests()}"


# --- model packages ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smollm2(site: Site, smollm2_package: Path) -> str:
    """The default model (SmolLM2-135M-Instruct, q4/q8 as carried over from its GGUF), served as /models/smollm2/."""
    return site.add_model("smollm2", smollm2_package)


@pytest.fixture(scope="session")
def tiny(site: Site, tmp_path_factory: pytest.TempPathFactory):
    """tiny(arch, weights) -> the name of a served package of a random transformers checkpoint (cached). weights:
    f32, q4, q8, or "q4+v8" (q4 with attn_v kept at 8 bits: mixed storage within a layer's q/k/v)."""
    from tiny_models import make_hf

    from model_prep.plan import Options
    from model_prep.prepare import prepare

    made: dict[tuple[str, str], str] = {}

    def get(arch: str = "llama", weights: str = "f32") -> str:
        if (arch, weights) not in made:
            base = tmp_path_factory.mktemp(f"tiny_{arch}_{weights.replace('+', '_')}")
            # phi3: longrope with original context 200 of 256 (attention factor 1.023), so the long prompt fits
            hf = make_hf(base / "hf", arch, seed=3, **({"original": 200} if arch == "phi3" else {}))
            opts = Options(weights="q4", keep_8bit=(r"attn_v\.",)) if weights == "q4+v8" else Options(weights=weights)
            package = prepare(hf, base / "pkg", opts)
            made[arch, weights] = site.add_model(f"tiny-{arch}-{weights.replace('+', '-')}", package)
        return made[arch, weights]

    return get
