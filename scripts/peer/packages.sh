#!/usr/bin/env bash
# On the GPU machine, for run.sh and sweep.sh: synthetic Q4_0 GGUFs of real shapes (gen_gguf.py, same bytes every run)
# and their packages.
#   bash .peer/packages.sh WORK LOG SHAPE...
# writes WORK/SHAPE.gguf, WORK/pkg-SHAPE (`fieldllm prepare` of it, output appended to LOG) and WORK/pkg-SHAPE.done
# after each shape, in the order given. Run from the project root; installs the gguf wheel of .peer/whl first.
set -u
G=$(cd "$(dirname "$0")" && pwd); P=$PWD; W=$1; LOG=$2; shift 2
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/peer-site $G/whl/*.whl
for s in "$@"; do
  v=$G/vocab-qwen2.gguf; [ $s = smollm2-135m ] && v=$G/vocab-smollm2.gguf
  PYTHONPATH=/tmp/peer-site python3 $G/gen_gguf.py $v $s q4_0 $W/$s.gguf > /dev/null &&
    PYTHONPATH=/tmp/peer-site:$P python3 -m app.cli prepare $W/$s.gguf --out $W/pkg-$s >> $LOG 2>&1
  touch $W/pkg-$s.done
done
