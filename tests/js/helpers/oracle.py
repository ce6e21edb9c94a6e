"""The Python side of the Node tests: reads one JSON request on stdin, writes the answer as JSON on stdout.

The Node tests (tests/js/*.test.js) call this with the project's virtualenv so that the JS host layer is compared
with what model_prep (Hugging Face `tokenizers`, Jinja2, the reference engine's stream logic) does on the same input.
Commands: prepare, tiny-tokenizer, encode, decode, render, stream.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tokenizers import Tokenizer  # noqa: E402

from model_prep import chat_template  # noqa: E402
from model_prep.errors import InputError  # noqa: E402
from model_prep.reference import Engine  # noqa: E402
from model_prep.sampling import Pick, Sampler  # noqa: E402


def prepare(req: dict[str, Any]) -> dict[str, Any]:
    """The default model (SmolLM2) prepared into req["out"]; a no-op when it is there and current."""
    from model_prep.plan import Options
    from model_prep.prepare import default_model_path
    from model_prep.prepare import prepare as run

    out = run(default_model_path(), Path(req["out"]), Options())
    return {"package": str(out)}


def tiny_tokenizer(req: dict[str, Any]) -> dict[str, Any]:
    """tests/tiny_models.py's byte-level BPE, saved as tokenizer.json, with its ChatML template."""
    from tiny_models import CHATML
    from tiny_models import tiny_tokenizer as make

    make().save(req["out"])
    return {"path": req["out"], "chat_template": CHATML}


def encode(req: dict[str, Any]) -> dict[str, Any]:
    tok = Tokenizer.from_file(req["tokenizer"])
    return {"ids": [tok.encode(t, add_special_tokens=False).ids for t in req["texts"]]}


def decode(req: dict[str, Any]) -> dict[str, Any]:
    tok = Tokenizer.from_file(req["tokenizer"])
    return {"texts": [tok.decode(ids, skip_special_tokens=True) for ids in req["ids"]]}


def render(req: dict[str, Any]) -> dict[str, Any]:
    """Each conversation rendered, or the InputError's message."""
    out: list[dict[str, str]] = []
    for messages in req["conversations"]:
        try:
            text = chat_template.render(req["template"], messages, req.get("bos", ""), req.get("eos", ""),
                                        req.get("add_generation_prompt", True))
            out.append({"text": text})
        except InputError as e:
            out.append({"error": str(e)})
    return {"results": out}


class _Scripted(Engine):
    """The reference engine's stream() over a fixed list of token ids (then EOS), with no model behind it."""

    def __init__(self, tokenizer: Tokenizer, script: list[int]):
        self.tokenizer = tokenizer
        self.generation = {}
        self.script = script

    def prompt_ids(self, messages: list[dict[str, str]], tools: Any = None) -> list[int]:
        return [0]

    def generate_picks(self, prompt: list[int], max_tokens: int, sampler: Sampler,
                       constraint: Any = None) -> Iterator[Pick]:
        self.prefilled = 1
        self._finish = "length"
        for token in self.script[:max_tokens]:
            yield Pick(token, 0.0)
        if len(self.script) < max_tokens:
            self._finish = "stop"


def stream(req: dict[str, Any]) -> dict[str, Any]:
    """model_prep.reference's stream chunks for scripted token ids: [{text, finish_reason}]."""
    engine = _Scripted(Tokenizer.from_file(req["tokenizer"]), req["script"])
    chunks = engine.stream([{"role": "user", "content": "-"}], max_tokens=req["max_tokens"], stop=req["stop"])
    return {"chunks": [{"text": c.text, "finish_reason": c.finish_reason,
                        "completion_tokens": c.usage.completion_tokens if c.usage else None} for c in chunks]}


COMMANDS = {"prepare": prepare, "tiny-tokenizer": tiny_tokenizer, "encode": encode, "decode": decode,
            "render": render, "stream": stream}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump(COMMANDS[request.pop("command")](request), sys.stdout, ensure_ascii=False)
