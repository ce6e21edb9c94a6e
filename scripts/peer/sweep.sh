#!/usr/bin/env bash
# On the GPU machine, from the project root, carrying .device and .peer (scripts/peer/prepare.sh): our engine alone
# under several --tuning variants, one bench_engine.mjs --profile process per figure, variants alternated within each
# round (across processes the same code's kernel times move by up to 30%, so a variant is compared within rounds).
#   SWEEP='base {}
#   cg8 {"attentionCombine":{"WG":128,"CG":8}}' bash .peer/sweep.sh
# SWEEP: one variant a line, "NAME JSON [ARG...]" (NAME without "-"; JSON, without spaces, laid over pipelines.js
# TUNING, {} for the default; ARGs, also without spaces, passed on to bench_engine.mjs, e.g. --dawn-features LIST).
# A variant named "old" runs the tree of .peer/old (prepare.sh with AB_REV=<git rev>) instead of this one.
# SHAPES (default "qwen2.5-3b smollm2-135m"), PREFILLS ("1920 320": decode 64 tokens from there, profiled at KV
# PREFILL + 64), ROUNDS (3), UNTIL (stop starting figures after this many seconds, 480), CONTEXT (4096).
# MODE=prefill: prefill variants instead (--tuning of matmul tiles, say): per figure --prefill 256 --decode 8
# --prefill-repeats 5 --prefill-profile, one folder per shape (SHAPE-prefill); the profile's family times repeat
# to 0.1-0.3 ms across processes (docs/PERFORMANCE.md), the end-to-end rates do not.
# Results: $OUT/sweep.tgz (sweep/SHAPE-kvN/ab-NAME-ROUND.json and .log), and compare.py's A/B table per shape and KV.
set -u
P=$PWD; G=$P/.peer; W=/tmp/peer; R=/tmp/sweep; mkdir -p $W $R; START=$(date +%s)
trap 'for d in $R/*-kv*/ $R/*-prefill/; do [ -d $d ] || continue; echo "### $(basename $d)"; python3 $G/compare.py --ab $d; echo; done > $R/compare.txt 2>&1;
  cat $R/compare.txt; tar czf $OUT/sweep.tgz -C /tmp sweep' EXIT
[ -n "${SWEEP:-}" ] || { echo "SWEEP is empty: give one 'NAME JSON' line per variant"; exit 2; }
SHAPES=${SHAPES:-"qwen2.5-3b smollm2-135m"}
bash $G/packages.sh $W $R/prepare.log $SHAPES
echo "prepared at $(( $(date +%s) - START )) s" >> $R/timeline.txt
source .device/on-device.sh
for round in $(seq 1 ${ROUNDS:-3}); do
  for s in $SHAPES; do
    points=${PREFILLS:-1920 320}; [ "${MODE:-}" = prefill ] && points=prefill
    for p in $points; do
      if [ $p = prefill ]; then
        d=$R/$s-prefill; bench=(--prefill 256 --decode 8 --prefill-repeats 5 --prefill-profile)
      else
        d=$R/$s-kv$((p + 64)); bench=(--prefill $p --decode 64 --profile)
      fi
      mkdir -p $d
      while read -r name tuning extra; do
        [ -n "$name" ] || continue
        [ $(( $(date +%s) - START )) -gt ${UNTIL:-480} ] && exit 0
        args=(); [ "$tuning" != "{}" ] && args=(--tuning "$tuning")
        [ -n "$extra" ] && read -r -a more <<< "$extra" && args+=("${more[@]}")
        tree=$P; [ $name = old ] && tree=$G/old
        (cd $tree && timeout 100 node scripts/bench_engine.mjs --package $W/pkg-$s "${bench[@]}" --context ${CONTEXT:-4096} \
          "${args[@]}" --json $d/ab-$name-$round.json > $d/ab-$name-$round.log 2>&1 < /dev/null)
        tar czf $OUT/sweep.tgz -C /tmp sweep  # after every figure: a call killed at its limit runs no EXIT trap
      done <<< "$SWEEP"
    done
  done
  echo "round $round done at $(( $(date +%s) - START )) s" >> $R/timeline.txt
done
