#!/usr/bin/env bash
# On the GPU machine, from the project root, carrying .device and .peer (scripts/peer/prepare.sh):
#   bash .peer/run.sh            (SHAPES="smollm2-135m" to run fewer shapes; ROUNDS=2; DEEP="1920" the deeper KV
#                                 depths decode is also compared at, "" for none; BENCH_ARGS for bench_engine, default
#                                 "--prefill-repeats 3": a single timed prefill once read 0.08x for 0.23x)
# Builds llama.cpp's CUDA llama-bench (in the background), writes synthetic GGUFs of real shapes (same seed, same
# bytes every run), prepares each with `fieldllm prepare`, then runs llama-bench and scripts/bench_engine.mjs on the
# same files, alternating. Prints ours / llama.cpp per figure (compare.py) and leaves everything in $OUT/peer.tgz.
# With .peer/old (prepare.sh with AB_REV=<git rev>): while llama.cpp builds (the GPU idle), an A/B of our engine on
# AB_SHAPE's package (default qwen2.5-3b, prepared first), one process per variant in turn: the tree of AB_REV ("old"),
# this tree ("new"), and this tree with --tuning "$AB_TUNING" ("tuned", when given); bench_engine --profile at
# --context AB_CONTEXT (4096). After the side-by-side, more A/B rounds while the run is younger than AB_UNTIL seconds.
set -u
P=$PWD; G=$P/.peer; W=/tmp/peer; R=/tmp/peer-res; mkdir -p $W $R; START=$(date +%s)
trap 'python3 $G/compare.py $R > $R/compare.txt 2>&1; cat $R/compare.txt; tar czf $OUT/peer.tgz -C /tmp peer-res' EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $R/gpu.txt 2>&1
tar xJf $G/llama.tar.xz -C $W
( cd $W/llama.cpp && cmake -S . -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DCMAKE_BUILD_TYPE=Release > $W/cmake.log 2>&1 && nice -n 10 cmake --build build -j 13 --target llama-bench > $W/build.log 2>&1; echo "build rc $?" >> $W/build.log ) &
BUILD=$!
SHAPES=${SHAPES:-"smollm2-135m qwen2.5-1.5b qwen2.5-3b"}
DEEP=${DEEP-1920}
[ -f $G/vocab-qwen2.gguf ] || SHAPES=smollm2-135m
AB=""; [ -d $G/old ] && AB=${AB_SHAPE:-qwen2.5-3b}
[ -n "$AB" ] && SHAPES="$AB $(echo " $SHAPES " | sed "s/ $AB / /")"  # the A/B's package first
bash $G/packages.sh $W $R/prepare.log $SHAPES &
PREP=$!
source .device/on-device.sh
B=$W/llama.cpp/build/bin/llama-bench
ab_round() {  # $1: round number; one bench_engine process per variant
  for v in old new ${AB_TUNING:+tuned}; do
    local dir=$P args=()
    [ $v = old ] && dir=$G/old
    [ $v = tuned ] && args=(--tuning "$AB_TUNING")
    ( cd $dir && timeout 90 node scripts/bench_engine.mjs --package $W/pkg-$AB --prefill 256 --decode 128 \
        --context ${AB_CONTEXT:-4096} --profile "${args[@]}" --json $R/ab-$v-$1.json > $R/ab-$v-$1.log 2>&1 )
  done
  echo "A/B round $1 done at $(( $(date +%s) - START )) s" >> $R/timeline.txt
  tar czf $OUT/peer.tgz -C /tmp peer-res
}
ab_ok() {  # did round $1 measure anything? (else stop: a broken variant must not spin the loop)
  [ -e $R/ab-new-$1.json ] || { echo "A/B round $1 measured nothing: A/B stopped (see $R/ab-*-$1.log)" >> $R/timeline.txt; AB=""; false; }
}
n=0
if [ -n "$AB" ]; then
  while [ ! -e $W/pkg-$AB.done ]; do kill -0 $PREP 2>/dev/null || break; sleep 2; done
  while [ -e $W/pkg-$AB.done ] && kill -0 $BUILD 2>/dev/null; do n=$((n + 1)); ab_round $n; ab_ok $n || break; done
fi
wait $PREP; wait $BUILD; tail -3 $W/build.log > $R/build.txt
for round in $(seq 1 ${ROUNDS:-2}); do
  for s in $SHAPES; do
    [ -x $B ] && timeout 200 $B -m $W/$s.gguf -ngl 99 -fa 1 -p 256 -n 128 -d 0,256${DEEP:+,${DEEP// /,}} -r 3 -o jsonl >> $R/llama-$s.jsonl 2>> $R/llama-err.log
    timeout 200 node scripts/bench_engine.mjs --package $W/pkg-$s --prefill 256 --decode 128 ${BENCH_ARGS---prefill-repeats 3} --json $R/fieldllm-$s-r$round.json > $R/fieldllm-$s-r$round.log 2>&1
    for d in $DEEP; do  # decode from position d: prefill d tokens first
      timeout 200 node scripts/bench_engine.mjs --package $W/pkg-$s --prefill $d --decode 128 ${BENCH_ARGS---prefill-repeats 3} --json $R/fieldllm-$s-kv$d-r$round.json > $R/fieldllm-$s-kv$d-r$round.log 2>&1
    done
    tar czf $OUT/peer.tgz -C /tmp peer-res  # after every shape: a call killed at its limit runs no EXIT trap
  done
done
while [ -n "$AB" ] && [ $(( $(date +%s) - START )) -lt ${AB_UNTIL:-0} ]; do n=$((n + 1)); ab_round $n; ab_ok $n || break; done
