"""Grammar-constrained decoding with xgrammar: which tokens may come next, so that the output always parses.

A ``GrammarSpec`` says what the output must be, as plain JSON that the browser engine compiles the same way with
``@mlc-ai/web-xgrammar`` (app/engine/grammar.js), so that one request means one grammar whichever engine answers:

  {"kind": "json_schema", "schema": {...}}            one JSON value of the schema (compact: ", " and ": ",
                                                      no other whitespace; strict: no properties beyond the schema's)
  {"kind": "structural_tag", "tag": {...}}            xgrammar's structural tag (tool calls: text and tagged JSON)

``Grammars`` compiles specs against one tokenizer and keeps them (compiling a schema costs 10-300 ms; the first token
of the next request with the same schema must not wait for it). ``Constraint`` follows one generation: ``allowed()``
is the bitmask of tokens the grammar accepts next, ``accept(token)`` advances it.

The vocabulary handed to xgrammar is read from tokenizer.json (not from transformers), the same way on both sides:
token strings by id (added tokens included), the decoder's kind (byte-level BPE or byte-fallback), and whether the
tokenizer prepends a space.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError, UnsupportedError

CACHE_SIZE = 32  # compiled grammars kept per model (a schema compiles once, then its requests start at once)

# JSON Schema keywords that xgrammar 0.1.27 turns into grammar rules, checked by tests/test_structured_property.py.
# A schema with any other keyword (that is not a pure annotation) is refused with a 400 rather than answered with
# output the keyword was supposed to rule out. Left out on purpose: oneOf (compiled as anyOf: "exactly one" is not
# enforced), pattern and format (not covered by our property tests), and ranges on non-integers (a "number" with
# "maximum": 1 came out as 1.45).
SCHEMA_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
    "enum", "const", "anyOf", "$ref", "$defs", "definitions", "minLength", "maxLength",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
})
_RANGES = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
                         "readOnly", "writeOnly"})


@dataclass(frozen=True)
class GrammarSpec:
    """What the output must be (see the module docstring). ``body`` is compact JSON, keys in the order given;
    ``key`` is the sha256 of kind and body: the audit's grammar hash."""

    kind: str  # "json_schema" | "structural_tag"
    body: str  # canonical JSON of the schema or the structural tag

    @staticmethod
    def json_schema(schema: dict[str, Any] | bool) -> GrammarSpec:
        check_schema(schema)
        return GrammarSpec("json_schema", _canonical(schema))

    @staticmethod
    def structural_tag(tag: dict[str, Any]) -> GrammarSpec:
        return GrammarSpec("structural_tag", _canonical(tag))

    @property
    def key(self) -> str:
        return hashlib.sha256(f"{self.kind}\n{self.body}".encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        name = "schema" if self.kind == "json_schema" else "tag"
        return {"kind": self.kind, name: json.loads(self.body)}


def _canonical(value: Any) -> str:
    """Compact JSON in the order given: a schema's property order is the order the answer must follow, so it is
    part of the grammar (and of its key)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def check_schema(schema: Any, where: str = "schema") -> None:
    """Refuses (InputError) a schema that uses a keyword the grammar cannot enforce."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise InputError(f"{where} must be a JSON Schema object")
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key not in SCHEMA_KEYWORDS:
            raise UnsupportedError(f"{where} uses the JSON Schema keyword {key!r}, which constrained decoding cannot "
                                   f"enforce; supported: {', '.join(sorted(SCHEMA_KEYWORDS))}")
        if key in _RANGES and schema.get("type") != "integer":
            raise UnsupportedError(f"{where} has {key!r} on a non-integer; constrained decoding enforces ranges only "
                                   "for \"type\": \"integer\"")
        if key in ("properties", "$defs", "definitions"):
            if not isinstance(value, dict):
                raise InputError(f"{where}.{key} must be an object of schemas")
            for name, sub in value.items():
                check_schema(sub, f"{where}.{key}.{name}")
        elif key in ("items", "additionalProperties") and not isinstance(value, bool):
            check_schema(value, f"{where}.{key}")
        elif key in ("prefixItems", "anyOf", "oneOf"):
            if not isinstance(value, list):
                raise InputError(f"{where}.{key} must be a list of schemas")
            for i, sub in enumerate(value):
                check_schema(sub, f"{where}.{key}.{i}")


@dataclass(frozen=True)
class Vocab:
    """What xgrammar needs to know of a tokenizer, read from tokenizer.json."""

    tokens: list[str]  # token string by id, "" for ids the tokenizer does not use (padding rows of the embedding)
    vocab_type: str  # "byte_level" (GPT-2 style BPE), "byte_fallback" (sentencepiece-style <0xAB>) or "raw"
    add_prefix_space: bool


def vocab_from_tokenizer_json(tokenizer: dict[str, Any], vocab_size: int) -> Vocab:
    tokens = [""] * vocab_size
    table = tokenizer.get("model", {}).get("vocab", {})
    # BPE and WordPiece: {token: id}; Unigram: [[token, score], ...] by id
    pairs = table.items() if isinstance(table, dict) else ((p[0], i) for i, p in enumerate(table))
    for text, i in pairs:
        if 0 <= i < vocab_size:
            tokens[i] = text
    for added in tokenizer.get("added_tokens", []):
        if 0 <= added["id"] < vocab_size:
            tokens[added["id"]] = added["content"]
    decoders = _parts(tokenizer.get("decoder"))
    kinds = {d.get("type") for d in decoders}
    if "ByteLevel" in kinds:
        vocab_type = "byte_level"
    elif "ByteFallback" in kinds:
        vocab_type = "byte_fallback"
    else:
        vocab_type = "raw"
    prefix = any(d.get("type") == "Metaspace" and d.get("prepend_scheme", "always") != "never"
                 for d in _parts(tokenizer.get("pre_tokenizer")) + _parts(tokenizer.get("normalizer")))
    return Vocab(tokens, vocab_type, prefix)


def _parts(node: Any) -> list[dict[str, Any]]:
    """A tokenizer.json component and, for a Sequence, its members."""
    if not isinstance(node, dict):
        return []
    inner = node.get("decoders") or node.get("pretokenizers") or node.get("normalizers")
    return [node, *[p for sub in inner or [] for p in _parts(sub)]]


# Bytes that are never part of structured output: C0 controls but line feed and carriage return (tab included).
# xgrammar 0.1.27 lets them into JSON strings raw, where JSON forbids them; a token holding one is masked out of every
# constrained generation (the GPU's and the reference's alike), so an answer cannot fail to parse that way.
CONTROL_BYTES = frozenset(range(0x20)) - {0x0A, 0x0D}
_BYTE_TOKEN = re.compile("<0x([0-9A-Fa-f]{2})>")


def _has_control(token: str, vocab_type: str) -> bool:
    if any(ord(c) in CONTROL_BYTES for c in token):
        return True
    if vocab_type == "byte_level":  # GPT-2's byte-to-character map puts byte b < 0x21 at U+0100 + b
        return any(0x100 <= ord(c) < 0x120 and ord(c) - 0x100 in CONTROL_BYTES for c in token)
    if vocab_type == "byte_fallback":  # sentencepiece's byte tokens: <0x09>
        m = _BYTE_TOKEN.fullmatch(token)
        return m is not None and int(m.group(1), 16) in CONTROL_BYTES
    return False


def plain_token_bits(vocab: Vocab) -> npt.NDArray[np.uint32]:
    """u32[ceil(vocab / 32)]: bit set for each token with no control byte (see CONTROL_BYTES)."""
    bits = np.array([not _has_control(t, vocab.vocab_type) for t in vocab.tokens], bool)
    padded = np.zeros(((len(bits) + 31) // 32) * 32, bool)
    padded[: len(bits)] = bits
    return np.packbits(padded, bitorder="little").view(np.uint32).copy()


class Grammars:
    """Compiled grammars for one tokenizer, most recently used kept (``CACHE_SIZE``)."""

    def __init__(self, vocab: Vocab, stop_ids: list[int]):
        import xgrammar as xgr  # imports torch: only when a request asks for structured output

        self._xgr = xgr
        vocab_type = {"byte_level": xgr.VocabType.BYTE_LEVEL, "byte_fallback": xgr.VocabType.BYTE_FALLBACK,
                      "raw": xgr.VocabType.RAW}[vocab.vocab_type]
        self.vocab_size = len(vocab.tokens)
        self.stop_ids = list(stop_ids)
        self.plain = plain_token_bits(vocab)
        info = xgr.TokenizerInfo(vocab.tokens, vocab_type, vocab_size=self.vocab_size, stop_token_ids=stop_ids,
                                 add_prefix_space=vocab.add_prefix_space)
        self._compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=False)
        self._cache: OrderedDict[str, Any] = OrderedDict()

    @staticmethod
    def from_tokenizer_file(path: Path, vocab_size: int, stop_ids: list[int]) -> Grammars:
        return Grammars(vocab_from_tokenizer_json(json.loads(path.read_text()), vocab_size), stop_ids)

    def compile(self, spec: GrammarSpec) -> Any:
        hit = self._cache.get(spec.key)
        if hit is not None:
            self._cache.move_to_end(spec.key)
            return hit
        try:
            if spec.kind == "json_schema":
                compiled = self._compiler.compile_json_schema(spec.body, any_whitespace=False, strict_mode=True)
            elif spec.kind == "structural_tag":
                compiled = self._compiler.compile_structural_tag(spec.body)
            else:
                raise InputError(f"unknown grammar kind {spec.kind!r}")
        except (RuntimeError, ValueError) as e:  # xgrammar's messages for schemas and tags it cannot convert
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UnsupportedError(f"the output format cannot be turned into a grammar: {first}") from None
        self._cache[spec.key] = compiled
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return compiled

    def constraint(self, spec: GrammarSpec) -> Constraint:
        return Constraint(self._xgr.GrammarMatcher(self.compile(spec)), self.vocab_size, self.stop_ids, self.plain)


class Constraint:
    """One generation's place in its grammar."""

    def __init__(self, matcher: Any, vocab_size: int, stop_ids: list[int],
                 plain: npt.NDArray[np.uint32] | None = None):
        import torch  # xgrammar fills torch tensors; the buffer is shared with numpy (no copy per token)

        self._matcher = matcher
        self._plain = None if plain is None else plain.view(np.int32)  # tokens without control bytes
        self.vocab_size = vocab_size
        self._words = np.zeros((vocab_size + 31) // 32, np.int32)  # i32[ceil(vocab / 32)], bit i%32 of word i/32
        self._tensor = torch.from_numpy(self._words)
        self._stop = np.zeros(vocab_size, bool)
        self._stop[[i for i in stop_ids if 0 <= i < vocab_size]] = True
        self._allowed: npt.NDArray[np.bool_] | None = None  # the last allowed() result

    def bitmask(self) -> npt.NDArray[np.uint32]:
        """u32[ceil(vocab / 32)]: the tokens allowed next, as the GPU's argmax reads them."""
        self._matcher.fill_next_token_bitmask(self._tensor)
        if self._plain is not None:
            self._words &= self._plain
        return self._words.view(np.uint32)

    def allowed(self) -> npt.NDArray[np.bool_]:
        """bool[vocab]: the tokens allowed next."""
        bits = np.unpackbits(self.bitmask().view(np.uint8), bitorder="little")
        self._allowed = bits[: self.vocab_size].astype(bool)
        return self._allowed

    def accept(self, token: int) -> None:
        if not self._matcher.accept_token(token):
            raise RuntimeError(f"the grammar refused token {token}, which its own mask allowed")
        self._allowed = None

    def finished(self) -> bool:
        """The output is complete: the grammar allows nothing but a stop token next (so no model step is needed)."""
        allowed = self.allowed() if self._allowed is None else self._allowed
        return bool(allowed.any() and not (allowed & ~self._stop).any())
