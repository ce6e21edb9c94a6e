"""Where things are and how Chromium is started, for the PWA tests (kept out of conftest.py so that test modules
can import it: several conftest.py files share that module name)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
for _p in (ROOT, HERE.parent):  # app/ and model_prep/; tests/tiny_models.py
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from chromium import BASE_ARGS, CHROMIUM, WEBGPU_ARGS  # noqa: E402,F401  (re-exported for the PWA tests)

# fast retries (the defaults wait seconds between tries) and short answers (the tiny models babble); "engine": the
# site prefers WebGPU even on SwiftShader (a fallback adapter, which the app passes over for its CPU engine by
# default): these tests are about the WebGPU path. Where there is no adapter the app still chooses by itself.
APP_OPTIONS = {"retryBaseMs": 20, "retryMaxMs": 100, "maxTokens": 12, "engine": "webgpu"}

# a browser without WebAssembly (or with it turned off): the CPU engine cannot run
NO_WASM = "delete globalThis.WebAssembly;"

# the user chose "The local server" in the settings (stored on the device)
PREFER_SERVER = "localStorage.setItem('fieldllm-engine', 'server');"

# a GPU whose buffers hold at most 4 KiB: every model is too large for it
SMALL_GPU = """
const limits = Object.getOwnPropertyDescriptor(GPUAdapter.prototype, 'limits');
Object.defineProperty(GPUAdapter.prototype, 'limits', {
  configurable: true,
  get() {
    const real = limits.get.call(this);
    const small = new Set(['maxStorageBufferBindingSize', 'maxBufferSize']);
    return new Proxy(real, {get: (t, k) => (small.has(k) ? 4096 : t[k])});
  },
});
"""
