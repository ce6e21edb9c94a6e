"""The CPU engine's WebAssembly modules (app/engine/cpu/cpu_engine.wasm, and cpu_engine_mt.wasm for threads): build
outputs of scripts/build_wasm.sh (Debian's clang + lld), compiled here when one is missing or older than its sources,
so that every built app ships them (the service worker precaches them with the shell, sha256-checked like every other
file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import MissingSourceError, WasmBuildError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_wasm.sh"
WASM = Path("cpu") / "cpu_engine.wasm"
OUTPUTS = (WASM, Path("cpu") / "cpu_engine_mt.wasm")  # what build_wasm.sh writes
SOURCES = (Path("cpu") / "cpu_engine.c", Path("cpu") / "cpu_engine.h", Path("cpu") / "platform.h")


def _stale(outputs: list[Path], inputs: list[Path]) -> bool:
    if not all(p.is_file() for p in outputs):
        return True
    built = min(p.stat().st_mtime for p in outputs)
    return any(p.stat().st_mtime > built for p in inputs if p.is_file())


def ensure_cpu_engine(engine_dir: Path) -> Path:
    """engine_dir/cpu/cpu_engine.wasm (and cpu_engine_mt.wasm beside it), compiled first if one is missing or older
    than the C source, its header or scripts/build_wasm.sh. Only this repository's engine folder is compiled; another
    folder must bring its .wasm."""
    wasm = engine_dir / WASM
    ours = engine_dir.resolve() == (ROOT / "app" / "engine").resolve()
    if not ours:
        if not wasm.is_file():
            raise MissingSourceError(f"{wasm} is missing: build it with scripts/build_wasm.sh {wasm}")
        return wasm
    if not _stale([engine_dir / o for o in OUTPUTS], [engine_dir / s for s in SOURCES] + [SCRIPT]):
        return wasm
    try:
        done = subprocess.run([str(SCRIPT), str(wasm)], capture_output=True, text=True, check=False)
    except OSError as e:
        raise WasmBuildError(f"could not run {SCRIPT} to compile the CPU engine ({e.strerror}): "
                             "install clang and lld (apt-get install -y clang lld) and build again") from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise WasmBuildError(f"compiling the CPU engine to WebAssembly failed ({last}): install clang and lld "
                             "(apt-get install -y clang lld) and build again")
    return wasm
