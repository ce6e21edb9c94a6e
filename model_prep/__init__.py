"""fieldllm model preparation: checkpoint -> 4-bit WebGPU package, plus the numpy reference engine."""
