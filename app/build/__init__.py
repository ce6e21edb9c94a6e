"""`fieldllm build`: the PWA (app shell, service worker, engine, vendored npm files, model packages) into dist/."""

from .build import BuildResult, build
from .errors import BuildError

__all__ = ["BuildError", "BuildResult", "build"]
