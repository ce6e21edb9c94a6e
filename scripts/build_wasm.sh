#!/usr/bin/env bash
# Build the CPU engine (app/engine/cpu/cpu_engine.c) for wasm32 with SIMD128: app/engine/cpu/cpu_engine.wasm, a
# build output (not committed). Needs Debian's clang and lld (`apt-get install -y clang lld`; scripts/test does).
# No emscripten and no libc: the C file brings its own few helpers. Written to a temporary file, then renamed, so
# that a test process never reads half a file.
# Usage: scripts/build_wasm.sh [out.wasm]
set -euo pipefail
cd "$(dirname "$0")/.."
src=app/engine/cpu/cpu_engine.c
out=${1:-app/engine/cpu/cpu_engine.wasm}
cc=${CC_WASM:-clang}
if ! command -v "$cc" >/dev/null || ! command -v wasm-ld >/dev/null; then
  echo "build_wasm.sh: needs clang and wasm-ld: apt-get install -y clang lld" >&2
  exit 1
fi
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# -ffp-contract=off: no fused multiply-adds (the reference's numpy rounds every product); -mbulk-memory: struct
# copies become memory.copy instead of calls to a memcpy we do not have; the memory is exported and grows (weights
# are copied in at load); 1 MiB of stack (nothing big lives there).
"$cc" --target=wasm32 -std=c11 -O3 -msimd128 -mbulk-memory -ffreestanding -nostdlib -ffp-contract=off \
  -Wall -Wextra -Werror \
  -Wl,--no-entry -Wl,-z,stack-size=1048576 -Wl,--max-memory=4294967296 \
  -o "$tmp" "$src"
mv "$tmp" "$out"
trap - EXIT
echo "$out"
