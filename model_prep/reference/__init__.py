"""The numpy reference engine: the ground truth every other engine is tested against.

forward.py is the transformer (plain f32 numpy; weights.py keeps its matrices as stored and dequantizes them when
used), engine.py turns chat requests into tokens and back (template, sampling, grammar constraints, stop text), and
the rest are its parts: chat_template, sampling, grammar, structured.
The server's local backend and `fieldllm chat` use it through ``load``.
"""

from .engine import Chunk, Completion, Decoding, Engine, Timings, Usage, engine_from_package, load

__all__ = ["Chunk", "Completion", "Decoding", "Engine", "Timings", "Usage", "engine_from_package", "load"]
