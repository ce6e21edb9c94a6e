"""The CPU engine's C kernels (app/engine/cpu/cpu_engine.c), compiled for this machine, as the local engine of
`fieldllm serve`: ``build.py`` compiles the shared library (cached per source and CPU), ``model.py`` loads a package
into it and runs the reference engine's tokenizer, template, sampling and grammar on its logits.

Importing this package imports nothing heavy; ``load`` (numpy, the library) is imported by who uses it.
"""
