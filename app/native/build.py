"""Compile app/engine/cpu/cpu_engine.c into a shared library for this machine, once, into a cache folder.

The same C as the WebAssembly build (platform.h maps its SIMD128 intrinsics onto the compiler's vector extensions),
compiled with the system compiler (``$CC``, else cc, gcc, clang) for the CPU it runs on (-march=native on x86-64,
-mcpu=native on arm64). The library's name carries a hash of the sources, the compiler, the flags and the CPU, so an
edited kernel or another machine sharing the home folder gets its own build and a stale one is never loaded. It is
written to a temporary file and renamed: a crash or a concurrent build never leaves half a library.

scripts/setup-python runs ``python -m app.native.build`` at install; ``library()`` builds on first use otherwise.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[1] / "engine" / "cpu"
SOURCES = ("cpu_engine.c", "cpu_engine.h", "platform.h", "wide.h")  # everything the build reads (the hash covers them)
COMPILERS = ("cc", "gcc", "clang")
# -ffp-contract=off: no fused multiply-adds, as the wasm build (its bits equal the native build's); the rest changes
# no result: -fno-math-errno lets sqrtf be one instruction, -fno-strict-aliasing keeps the planes' casts defined
FLAGS = ("-std=c11", "-O3", "-fPIC", "-shared", "-fvisibility=hidden", "-ffp-contract=off", "-fno-math-errno",
         "-fno-strict-aliasing", "-Wall", "-Wextra", "-Werror")
LIBS = ("-lm",)
CACHE_ENV = "FIELDLLM_NATIVE_CACHE"
CFLAGS_ENV = "FIELDLLM_NATIVE_CFLAGS"  # more flags, e.g. -DFE_NO_WIDE (the 128-bit kernels on an AVX2 machine)
FIX = "install one (apt-get install -y gcc libc6-dev) or serve with --engine numpy"


class NativeBuildError(RuntimeError):
    """The native engine cannot be built here (the message is one line: what is wrong and what to do)."""


def cache_dir() -> Path:
    """$FIELDLLM_NATIVE_CACHE, else $XDG_CACHE_HOME/fieldllm/native, else ~/.cache/fieldllm/native."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fieldllm" / "native"


def compiler() -> str:
    """The C compiler to use: $CC, else the first of cc, gcc, clang on PATH."""
    cc = os.environ.get("CC")
    if cc:
        if not shutil.which(cc.split()[0]):
            raise NativeBuildError(f"CC={cc} is not on PATH: unset CC, or {FIX}")
        return cc
    for name in COMPILERS:
        if shutil.which(name):
            return name
    raise NativeBuildError(f"the native CPU engine needs a C compiler and none of {', '.join(COMPILERS)} is on PATH: "
                           f"{FIX}")


def arch_flags() -> tuple[str, ...]:
    """Code for this machine's CPU: AVX2/FMA/AVX-512 encodings where it has them, NEON and its extensions on arm64."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "i386"):
        return ("-march=native",)
    if machine in ("aarch64", "arm64") or machine.startswith("arm"):
        return ("-mcpu=native",)
    return ()


def _cpu_id() -> str:
    """What -march=native depends on: the CPU's model and feature flags (Linux), else the machine name."""
    try:
        lines = Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return platform.machine()
    keys = ("flags", "features", "model name", "cpu part", "cpu implementer")
    return "\n".join(sorted({ln for ln in lines if ln.split(":")[0].strip().lower() in keys}))


def _compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NativeBuildError(f"{cc} --version failed ({e}): {FIX}") from None
    return out.stdout


def library_name(cc: str, flags: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        h.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    for part in (cc, _compiler_id(cc), *flags, platform.machine(), _cpu_id()):
        h.update(part.encode() + b"\0")
    return f"libfieldllm_cpu-{h.hexdigest()[:16]}.so"


def _compile(cc: str, flags: tuple[str, ...], out: Path) -> str | None:
    """Compile to ``out``; None on success, else the compiler's first error line."""
    cmd = [*cc.split(), *flags, "-o", str(out), str(SOURCE_DIR / "cpu_engine.c"), *LIBS]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if run.returncode == 0:
        return None
    lines = [ln for ln in (run.stderr + run.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or [f"exit status {run.returncode}"])[0].strip()


@cache
def library() -> Path:
    """The shared library for this machine and these sources, built now if the cache has none (a second or two)."""
    missing = [n for n in SOURCES if not (SOURCE_DIR / n).is_file()]
    if missing:
        raise NativeBuildError(f"{SOURCE_DIR} lacks {', '.join(missing)}: the native engine builds from a checkout "
                               "(pip install -e .)")
    cc = compiler()
    flags = (*FLAGS, *arch_flags(), *shlex.split(os.environ.get(CFLAGS_ENV, "")))
    folder = cache_dir()
    path = folder / library_name(cc, flags)
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=folder)
    except OSError as e:
        raise NativeBuildError(f"cannot write the native engine into {folder} ({e.strerror}): set {CACHE_ENV} to a "
                               "writable folder") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        error = _compile(cc, flags, tmp)
        if error and arch_flags():  # a compiler that does not know this CPU: portable code rather than none
            error = _compile(cc, tuple(f for f in flags if f not in arch_flags()), tmp)
        if error:
            raise NativeBuildError(f"{cc} could not compile {SOURCE_DIR / 'cpu_engine.c'}: {error}; fix the source "
                                   "(or set CC to another compiler), or serve with --engine numpy")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def main() -> int:
    """``python -m app.native.build``: build (or find) the library and print its path; one line and exit 1 if not."""
    try:
        print(library())
    except NativeBuildError as e:
        print(f"fieldllm: the native CPU engine is not built: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
