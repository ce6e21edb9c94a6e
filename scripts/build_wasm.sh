#!/usr/bin/env bash
# Build the CPU engine (app/engine/cpu/cpu_engine.c) for wasm32 with SIMD128, twice: cpu_engine.wasm (one thread,
# its own memory: runs anywhere) and cpu_engine_mt.wasm (-DFE_THREADS: atomics and an imported shared memory, for
# pages that are cross-origin isolated and for Node; app/engine/cpu/model.js starts the workers). Both are build
# outputs (not committed). Needs Debian's clang and lld (`apt-get install -y clang lld`; scripts/test does).
# No emscripten and no libc: the C file brings its own few helpers. Each is written to a temporary file, then
# renamed, so that a test process never reads half a file.
# Usage: scripts/build_wasm.sh [out_dir]   (default app/engine/cpu; a path ending in .wasm means its folder)
set -euo pipefail
cd "$(dirname "$0")/.."
src=app/engine/cpu/cpu_engine.c
dir=${1:-app/engine/cpu}
case "$dir" in *.wasm) dir=$(dirname "$dir") ;; esac
cc=${CC_WASM:-clang}
if ! command -v "$cc" >/dev/null || ! command -v wasm-ld >/dev/null; then
  echo "build_wasm.sh: needs clang and wasm-ld: apt-get install -y clang lld" >&2
  exit 1
fi
tmp="$dir/.cpu_engine.tmp.$$"
trap 'rm -f "$tmp".*' EXIT
# -ffp-contract=off: no fused multiply-adds (the reference's numpy rounds every product); -mbulk-memory: struct
# copies become memory.copy instead of calls to a memcpy we do not have; the memory grows (weights are copied in at
# load); 1 MiB of stack (nothing big lives there; each worker gets its own, model.js).
common=(--target=wasm32 -std=c11 -O3 -msimd128 -mbulk-memory -ffreestanding -nostdlib -ffp-contract=off
  -Wall -Wextra -Werror -Wl,--no-entry -Wl,-z,stack-size=1048576 -Wl,--max-memory=4294967296)
"$cc" "${common[@]}" -o "$tmp.st" "$src"
# threads: the memory is imported (every worker instantiates the module over the same one) and shared, starts at
# 4 MiB (model.js creates it so), and __stack_pointer is exported so that each worker can be given its own stack.
"$cc" "${common[@]}" -DFE_THREADS -matomics -mmutable-globals -Wl,--shared-memory -Wl,--import-memory \
  -Wl,--initial-memory=4194304 -Wl,--export=__stack_pointer -o "$tmp.mt" "$src"
mv "$tmp.st" "$dir/cpu_engine.wasm"
mv "$tmp.mt" "$dir/cpu_engine_mt.wasm"
trap - EXIT
echo "$dir/cpu_engine.wasm $dir/cpu_engine_mt.wasm"
