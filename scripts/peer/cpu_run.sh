#!/usr/bin/env bash
# On the GPU machine's CPU (an idle many-core host: thread scaling without the noise of the 2-core dev machine),
# from the project root, carrying .device, .peer (scripts/peer/prepare.sh) and the CPU engine's .wasm build outputs:
#   bash scripts/peer/cpu_run.sh            (QTYPES="q4_0 q4_1", THREADS=1,2,4, ROUNDS=2; no round 2 after DEADLINE=330 s)
# Builds llama.cpp's CPU llama-bench (in the background), writes the synthetic SmolLM2-shape GGUFs (same seed, same
# bytes every run), prepares each with `fieldllm prepare`, then runs our WebAssembly engine under Node
# (scripts/bench_cpu_engine.mjs, one model per thread count) and native llama-bench on the same files, alternating.
# Leaves the logs in $OUT/cpu.tgz.
set -u
P=$PWD; G=$P/.peer; W=/tmp/cpu; R=/tmp/cpu-res; mkdir -p $W $R
trap 'cat /proc/loadavg >> $R/machine.txt; tar czf $OUT/cpu.tgz -C /tmp cpu-res' EXIT
{ lscpu; cat /proc/loadavg; } > $R/machine.txt 2>&1
tar xJf $G/llama.tar.xz -C $W
( cd $W/llama.cpp && cmake -S . -B build -DGGML_CUDA=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DCMAKE_BUILD_TYPE=Release \
    > $W/cmake.log 2>&1 && nice -n 10 cmake --build build -j 12 --target llama-bench > $W/build.log 2>&1
  echo "build rc $?" >> $W/build.log ) &
BUILD=$!
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/peer-site $G/whl/*.whl
QTYPES=${QTYPES:-"q4_0 q4_1"}
for q in $QTYPES; do
  PYTHONPATH=/tmp/peer-site python3 $G/gen_gguf.py $G/vocab-smollm2.gguf smollm2-135m $q $W/$q.gguf > /dev/null &&
    PYTHONPATH=/tmp/peer-site:$P python3 -m app.cli prepare $W/$q.gguf --out $W/pkg-$q >> $R/prepare.log 2>&1
done
source .device/on-device.sh
# bench_cpu_engine.mjs rebuilds the .wasm first; that machine has no clang/wasm-ld: stand-ins hand back the carried ones
if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null; then
  mkdir -p /tmp/wasm-shim; printf '#!/bin/sh\nexit 0\n' > /tmp/wasm-shim/wasm-ld
  printf '#!/bin/sh\nf=cpu_engine; o=\nwhile [ $# -gt 0 ]; do case $1 in -DFE_THREADS) f=cpu_engine_mt;; -o) o=$2;; esac; shift; done\ncp %s/app/engine/cpu/$f.wasm "$o"\n' "$P" > /tmp/wasm-shim/clang
  chmod +x /tmp/wasm-shim/*; export PATH=/tmp/wasm-shim:$PATH
fi
wait $BUILD; tail -3 $W/build.log > $R/build.txt
B=$W/llama.cpp/build/bin/llama-bench
# the engine's worker threads keep Node alive after the bench is done: exit once it has finished
echo "await import('$P/scripts/bench_cpu_engine.mjs'); process.exit(0);" > $W/bench.mjs
for round in $(seq 1 ${ROUNDS:-2}); do
  [ $round -gt 1 ] && [ $SECONDS -gt ${DEADLINE:-330} ] && { echo "round $round skipped: ${SECONDS}s"; break; }
  for q in $QTYPES; do
    timeout 150 node $W/bench.mjs --package $W/pkg-$q --threads ${THREADS:-1,2,4} --repeats 3 \
      --prefill 128 --decode 64 --json $R/ours-$q-r$round.json > $R/ours-$q-r$round.log 2>&1
    [ -x $B ] && timeout 150 $B -m $W/$q.gguf -t ${THREADS:-1,2,4} -p 128 -n 64 -r 3 -o md > $R/llama-$q-r$round.md 2>> $R/llama-err.log
  done
done
cat $R/build.txt; tail -n 20 $R/ours-*-r1.log; cat $R/llama-*-r1.md
