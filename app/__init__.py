"""The web app side of fieldllm: the Python that renders (`fieldllm build`) and serves (`fieldllm serve`) it."""
