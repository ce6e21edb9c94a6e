"""Rebuild a Hugging Face `tokenizer.json` from the tokenizer metadata of a GGUF file.

A GGUF carries no `tokenizer.json`: llama.cpp stores the vocabulary, the merges (or SentencePiece scores), each
token's type and the special token ids as metadata, and names the pre-tokenizer split with `tokenizer.ggml.pre`.
The app's tokenizer runs on `tokenizer.json`, so we rebuild one here.

The reference is transformers' own GGUF loader (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`):
where it and llama.cpp disagree we follow transformers, and say so next to the code.

Speed (docs/PERFORMANCE.md): the `tokenizers` library decides everything but the BPE vocabulary and merges (added
tokens, pre-tokenizer, decoder, model options), on a model that holds only the added tokens; the vocabulary and merges
(49k + 49k entries for SmolLM2) are written straight into the JSON, in the order the library writes them (vocabulary
by id, merges by rank), and the finished file is loaded back once, which checks every merge against the vocabulary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

from .errors import InputError, UnsupportedError

# llama.cpp's token types (gguf.TokenType); the others (NORMAL, UNKNOWN, UNUSED, BYTE) need nothing added.
_CONTROL = 3
_USER_DEFINED = 4

# The Qwen2 split: a letter run may take one leading non-letter, digits go one by one.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# The Llama 3 split: as Qwen2's, but digits go in runs of up to three.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# `tokenizer.ggml.pre` of a byte-level ("gpt2") vocabulary -> the regex that cuts text into words before BPE;
# None is GPT-2's own split, which the ByteLevel pre-tokenizer applies itself.
#
# transformers gives every value it has no regex for GPT-2's split, and we match it. llama.cpp differs:
# - "smollm" first splits off every digit on its own (as SmolLM2's original tokenizer.json does). SmolLM2's vocab
#   has no token holding a digit, so this only shows where spaces or newlines run into a digit: "a  2" is
#   a, Ġ, Ġ, 2 here and in transformers, but a, ĠĠ, 2 in llama.cpp and in SmolLM2's own tokenizer.json.
# - "default" uses a different regex list (punctuation runs and 3-digit groups split apart).
# - "gpt2" is not a llama.cpp name at all (it writes "gpt-2"); we accept both.
# - "llama3"/"llama-bpe" also default BOS on; transformers' GGUF loader does not, and neither do we (llama.cpp's
#   converter writes tokenizer.ggml.add_bos_token anyway).
# Where we part from transformers' GGUF loader: the Llama 3 names set ignore_merges (a word that is a vocabulary
# entry is that token, before any merge), as llama.cpp, Meta's tokenizer.json and tiktoken do. Llama 3's vocabulary
# holds 588 text tokens its merges cannot rebuild (" việc", "ektedir", " характ", ...): without it those words came out
# as 3-4 tokens the model never saw (tests/test_tokenizer_families.py).
_IGNORE_MERGES = frozenset({"llama3", "llama-v3", "llama-bpe"})
_BYTE_LEVEL_SPLITS: dict[str, str | None] = {
    "default": None,
    "gpt2": None,
    "gpt-2": None,
    "smollm": None,
    "qwen2": _QWEN2_SPLIT,  # also Qwen3's files: llama.cpp names its (unchanged) pre-tokenizer "qwen2"
    "deepseek-r1-qwen": _QWEN2_SPLIT,
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "llama-bpe": _LLAMA3_SPLIT,
}

# transformers rebuilds the SentencePiece vocabularies of these architectures with their own rules (respelled
# space tokens, merges in file order, a normalizer instead of Metaspace); we have rebuilt gemma3's (_gemma_bpe) only.
_SENTENCEPIECE_OTHER_RULES = ("gemma", "gemma2", "phi3")
_GEMMA = ("gemma3",)

_SUPPORTED_MODELS = ("gpt2", "llama")

# GGUF key suffix of each named special token, in the order transformers registers them.
_NAMED_SPECIAL_IDS = ("bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id")

_SPIECE_SPACE = "\u2581"  # SentencePiece writes a space as "▁"


def _gpt2_byte_chars() -> dict[int, str]:
    """GPT-2's reversible byte -> character table.

    Byte-level vocabularies spell every byte as one printable character, so no token holds a space or a control
    character: printable Latin-1 bytes stand for themselves, the other 68 take the characters from U+0100 on.
    """
    table = {byte: chr(byte) for byte in [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]}
    unprintable = [byte for byte in range(256) if byte not in table]
    table.update({byte: chr(0x100 + n) for n, byte in enumerate(unprintable)})
    return table


_BYTE_CHARS = _gpt2_byte_chars()
_BYTE_ALPHABET = frozenset(_BYTE_CHARS.values())
_OUTSIDE_BYTE_ALPHABET = re.compile("[^" + "".join(re.escape(c) for c in sorted(_BYTE_ALPHABET)) + "]")


@dataclass
class _BPE:
    """A BPE vocabulary as the tokenizer.json "model" will hold it."""

    spelled: list[str]  # each id's vocabulary spelling
    vocab: dict[str, int]  # spelling -> id; a later duplicate wins (as in transformers)
    merges_json: str  # [[left, right], ...] by rank, each pair once (held against the vocabulary when loaded back)
    sentencepiece: bool  # byte fallback and fused unknowns (SentencePiece) or neither (byte-level)
    pre_tokenizer: Any
    decoder: Any
    ignore_merges: bool = False  # a word found whole in the vocabulary is that token, unmerged (Llama 3)
    normalizer: Any = None
    unk_token: str | None = None  # the BPE model's unknown token (gemma3: "<unk>", as GemmaTokenizer), else none

    def vocab_json(self) -> str:
        """The vocabulary as `tokenizers` writes it: ordered by id (an id lost to a later duplicate is left out)."""
        vocab = self.vocab
        if len(vocab) != len(self.spelled):  # duplicates: insertion order is no longer id order
            vocab = dict(sorted(vocab.items(), key=lambda item: item[1]))
        return json.dumps(vocab, ensure_ascii=False)


def _string_list(meta: Mapping[str, Any], key: str, why: str) -> list[str]:
    value = meta.get(key)
    if not value:
        raise UnsupportedError(f"GGUF has no {key}: cannot rebuild its tokenizer ({why})")
    # set(map(type, ...)) runs in C: the per-item isinstance loop cost 10 ms per 49k strings
    if not isinstance(value, list) or not (set(map(type, value)) <= {str} or all(isinstance(v, str) for v in value)):
        raise InputError(f"GGUF {key} is not a list of strings")
    return value


def _token_id(meta: Mapping[str, Any], key: str, vocab_size: int) -> int | None:
    value = meta.get(f"tokenizer.ggml.{key}")
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value < vocab_size:
        raise InputError(f"GGUF tokenizer.ggml.{key} = {value!r} is not a token id (vocabulary has {vocab_size})")
    return value


def _merge_pairs(lines: Sequence[str]) -> list[list[str]]:
    """Merge lines "left right" -> [left, right] pairs by rank, each pair once."""
    # Neither byte-level nor SentencePiece pieces hold a real space, so a merge line is exactly two pieces.
    pairs = [line.split(" ") for line in lines]
    if set(map(len, pairs)) != {2}:
        bad = next(line for line, pair in zip(lines, pairs, strict=True) if len(pair) != 2)
        raise InputError(f"GGUF merge {bad!r} is not two tokens separated by one space")
    if len(set(lines)) != len(lines):
        # a pair listed twice keeps its last rank, as `tokenizers` builds its merge table
        last = {line: rank for rank, line in enumerate(lines)}
        pairs = [line.split(" ") for line in sorted(last, key=last.__getitem__)]
    return pairs


def _pairs_json(pairs: Sequence[Sequence[str]]) -> str:
    return json.dumps([list(pair) for pair in pairs], ensure_ascii=False)


def _merge_lines_json(lines: list[str]) -> str:
    """Merge lines "left right" -> merges JSON, the text `json.dumps` gives for [[left, right], ...], each pair once.

    Done on the joined text rather than line by line (SmolLM2: 49k lines, 40 ms -> 10 ms); lines holding a newline
    take the plain path. Whether the pieces are vocabulary entries is left to the load-back check (`tokenizers`
    checks every merge when it builds the model).
    """
    text = "\n".join(lines)
    if not lines or text.count("\n") != len(lines) - 1:
        return _pairs_json(_merge_pairs(lines))
    codes = np.frombuffer(text.encode("utf-8"), np.uint8)
    line_of_space = np.searchsorted(np.flatnonzero(codes == ord("\n")), np.flatnonzero(codes == ord(" ")))
    if not (np.bincount(line_of_space, minlength=len(lines)) == 1).all():
        return _pairs_json(_merge_pairs(lines))  # raises, naming the first bad line
    if len(set(lines)) != len(lines):
        lines = [" ".join(pair) for pair in _merge_pairs(lines)]  # duplicates dropped
        text = "\n".join(lines)
    # '["a b"\n"c d"]': JSON escapes never make a space or a newline, so the raw spaces are the ones between the
    # two pieces and the newlines are between items
    body = json.dumps(lines, ensure_ascii=False, separators=("\n", ": "))
    return "[" + body.replace(" ", '", "').replace("\n", "], [") + "]"


def _byte_level_spelling(token: str) -> str:
    # llama.cpp writes normal tokens already spelled in the byte alphabet, but a mislabelled or hand-edited one may
    # be raw text; spell it the way the BPE model will see it. (transformers does the same.)
    if _BYTE_ALPHABET.issuperset(token):
        return token
    return "".join(_BYTE_CHARS[byte] for byte in token.encode("utf-8"))


def _byte_level_bpe(meta: Mapping[str, Any], tokens: list[str]) -> _BPE:
    """GPT-2 style byte-level BPE (Llama 3, Qwen2, SmolLM, ...)."""
    pre = meta.get("tokenizer.ggml.pre", "default")  # llama.cpp reads a missing value as "default"
    if pre not in _BYTE_LEVEL_SPLITS:
        raise UnsupportedError(
            f"GGUF tokenizer pre-tokenizer {pre!r} is not supported (supported: {', '.join(_BYTE_LEVEL_SPLITS)})"
        )
    merge_lines = _string_list(meta, "tokenizer.ggml.merges", "a byte-level BPE needs its merges")
    # one regex search over all tokens instead of one set per token: normally every token is already spelled
    all_spelled = _OUTSIDE_BYTE_ALPHABET.search("".join(tokens)) is None
    spelled = tokens if all_spelled else [_byte_level_spelling(token) for token in tokens]
    # A later duplicate wins, as in transformers; the vocabulary stays at most the model's size either way.
    vocab = dict(zip(spelled, range(len(spelled)), strict=True))
    merges_json = _merge_lines_json(merge_lines)

    split = _BYTE_LEVEL_SPLITS[pre]
    pre_tokenizer: Any
    if split is None:
        pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(split), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    # tokenizer.ggml.add_space_prefix is ignored: llama.cpp reads it for SentencePiece vocabularies only, and
    # transformers' byte-level loader ignores it too.
    return _BPE(spelled, vocab, merges_json, False, pre_tokenizer, decoders.ByteLevel(), pre in _IGNORE_MERGES)


def _merges_from_scores(tokens: list[str], scores: Sequence[float], vocab: Mapping[str, int]) -> list[tuple[str, str]]:
    """The merges a SentencePiece BPE vocabulary implies, in the order transformers derives them.

    SentencePiece files keep no merges: a piece's score is its merge priority. Every way of cutting a piece into
    two vocabulary pieces becomes a merge ranked by that piece's score (higher first), then by the longer left
    part, then the longer right part; remaining ties keep vocabulary order (the sort is stable).
    """
    score_of = dict(zip(tokens, scores, strict=True))  # first position, last score for a duplicate piece
    ranked: list[tuple[float, str, str]] = []
    for piece, score in score_of.items():
        for at in range(1, len(piece)):
            left, right = piece[:at], piece[at:]
            if left in vocab and right in vocab:
                ranked.append((score, left, right))
    ranked.sort(key=lambda merge: (merge[0], len(merge[1]), len(merge[2])), reverse=True)
    return [(left, right) for _, left, right in ranked]


def _gemma_bpe(meta: Mapping[str, Any], tokens: list[str]) -> _BPE:
    """Gemma 3's SentencePiece BPE, as transformers 5.23 rebuilds it from a GGUF (its gemma_tokenizer, then
    GemmaTokenizer): a token of only whitespace that holds a space is respelled as that many "▁" (the file keeps real
    spaces); the merges are every cut of a piece into two vocabulary pieces, ranked by the piece's position in the file
    (earlier first; Gemma's scores do not follow merge order), then the longer left part; spaces become "▁" in a
    normalizer, with no prefix space and no pre-tokenizer split; byte fallback; unknown token "<unk>"."""
    if meta.get("tokenizer.ggml.pre", "default") != "default":
        raise UnsupportedError(f"GGUF tokenizer pre-tokenizer {meta['tokenizer.ggml.pre']!r} with tokenizer model "
                               "'llama' is not supported (supported: default)")
    if meta.get("tokenizer.ggml.merges"):
        raise UnsupportedError("a gemma3 GGUF with tokenizer.ggml.merges is not supported (Gemma's files have none: "
                               "the merges come from the vocabulary order)")
    spelled = [_SPIECE_SPACE * len(t) if " " in t and not t.strip() else t for t in tokens]
    vocab = dict(zip(spelled, range(len(spelled)), strict=True))
    # _merges_from_scores with score -position, without its sort: each piece once, at its last position, cut longer
    # left part first (262144 pieces: 2.1 s -> 0.6 s)
    merges = [[piece[:at], piece[at:]] for i, piece in enumerate(spelled) if vocab[piece] == i
              for at in range(len(piece) - 1, 0, -1) if piece[:at] in vocab and piece[at:] in vocab]
    merges_json = json.dumps(merges, ensure_ascii=False)
    unk = _token_id(meta, "unknown_token_id", len(tokens))
    return _BPE(
        spelled, vocab, merges_json, True,
        pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False),
        decoders.Sequence([decoders.Replace(_SPIECE_SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]),
        normalizer=normalizers.Replace(" ", _SPIECE_SPACE),
        unk_token=spelled[unk] if unk is not None else "<unk>",
    )


def _sentencepiece_bpe(meta: Mapping[str, Any], tokens: list[str]) -> _BPE:
    """SentencePiece BPE with byte fallback (Llama 1/2, Mistral v0.1, TinyLlama, ...)."""
    architecture = meta.get("general.architecture")
    if architecture in _GEMMA:
        return _gemma_bpe(meta, tokens)
    if architecture in _SENTENCEPIECE_OTHER_RULES:
        raise UnsupportedError(
            f"GGUF tokenizer model 'llama' of architecture {architecture!r} is not supported "
            f"(supported: gpt2 for any architecture, llama except for {', '.join(_SENTENCEPIECE_OTHER_RULES)})"
        )
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre != "default":
        # llama.cpp ignores it here, but transformers would swap in a byte-level split for some values.
        raise UnsupportedError(
            f"GGUF tokenizer pre-tokenizer {pre!r} with tokenizer model 'llama' is not supported (supported: default)"
        )
    vocab = dict(zip(tokens, range(len(tokens)), strict=True))
    if meta.get("tokenizer.ggml.merges"):
        merges_json = _merge_lines_json(_string_list(meta, "tokenizer.ggml.merges", ""))
    else:
        scores = meta.get("tokenizer.ggml.scores")
        if not scores:
            raise UnsupportedError(
                "GGUF has neither tokenizer.ggml.merges nor tokenizer.ggml.scores: cannot rebuild its tokenizer"
            )
        if len(scores) != len(tokens):
            raise InputError(f"GGUF has {len(tokens)} tokens but {len(scores)} token scores")
        # each pair once: left + right is its own piece
        merges_json = _pairs_json(_merges_from_scores(tokens, scores, vocab))

    # A space becomes "▁", and one "▁" goes before the text (not after each special token). transformers does this
    # whatever tokenizer.ggml.add_space_prefix says; llama.cpp leaves the prefix out when it is false.
    pre_tokenizer = pre_tokenizers.Metaspace(replacement=_SPIECE_SPACE, prepend_scheme="first", split=False)
    decoder = decoders.Sequence(
        [
            decoders.Replace(_SPIECE_SPACE, " "),
            decoders.ByteFallback(),  # <0xNN> pieces back to bytes
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),  # the prefix space added when encoding
        ]
    )
    return _BPE(tokens, vocab, merges_json, True, pre_tokenizer, decoder)


def _post_processor(add_bos: bool, add_eos: bool, bos: tuple[str, int] | None, eos: tuple[str, int] | None) -> dict:
    """TemplateProcessing as transformers writes it: `[BOS] A [EOS]`, pairs `[BOS] A [EOS] [BOS] B [EOS]`.

    Written as JSON, not through `processors.TemplateProcessing`, whose template strings cannot name a token that
    holds ':' or a space.
    """
    wanted = [token for token, on in ((bos, add_bos), (eos, add_eos)) if on and token is not None]

    def sequence(name: str, type_id: int) -> list[dict]:
        pieces: list[dict] = []
        if add_bos and bos is not None:
            pieces.append({"SpecialToken": {"id": bos[0], "type_id": type_id}})
        pieces.append({"Sequence": {"id": name, "type_id": type_id}})
        if add_eos and eos is not None:
            pieces.append({"SpecialToken": {"id": eos[0], "type_id": type_id}})
        return pieces

    return {
        "type": "TemplateProcessing",
        "single": sequence("A", 0),
        "pair": sequence("A", 0) + sequence("B", 1),
        "special_tokens": {text: {"id": text, "ids": [token_id], "tokens": [text]} for text, token_id in wanted},
    }


def _with_vocab_and_merges(document: dict[str, Any], bpe: _BPE) -> str:
    """The document's JSON text (as `json.dumps(document, ensure_ascii=False)`) with the model's vocabulary and
    merges put in: spliced in as text where they are the last two keys of the last key, as `tokenizers` writes them."""
    model = document["model"]
    if list(document)[-1] == "model" and list(model)[-2:] == ["vocab", "merges"]:
        del model["vocab"], model["merges"]
        head = json.dumps(document, ensure_ascii=False)  # ends with the closing braces of "model" and the document
        return f'{head[:-2]}, "vocab": {bpe.vocab_json()}, "merges": {bpe.merges_json}}}}}'
    model["vocab"], model["merges"] = json.loads(bpe.vocab_json()), json.loads(bpe.merges_json)
    return json.dumps(document, ensure_ascii=False)


def tokenizer_json_from_gguf(meta: Mapping[str, Any], load_check: bool = True) -> str:
    """GGUF metadata (key -> plain Python value, as gguf's ReaderField.contents() returns: str, int, float, list)
    -> tokenizer.json text. ``load_check=False`` skips loading the text back with `tokenizers` (0.07 s on SmolLM2)
    for a caller that does that itself (the packer, while it writes shards: Checkpoint.check_tokenizer).

    Raises UnsupportedError for a tokenizer kind or pre-tokenizer we cannot rebuild, InputError for damaged data.
    """
    model = meta.get("tokenizer.ggml.model")
    if model not in _SUPPORTED_MODELS:
        raise UnsupportedError(
            f"GGUF tokenizer model {model!r} is not supported (supported: {', '.join(_SUPPORTED_MODELS)})"
        )
    tokens = _string_list(meta, "tokenizer.ggml.tokens", "it lists no vocabulary")
    # Without types every token is a normal one (only the named special tokens below get added).
    token_types: Sequence[int] = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if len(token_types) != len(tokens):
        raise InputError(f"GGUF has {len(tokens)} tokens but {len(token_types)} token types")

    if model == "gpt2":
        bpe = _byte_level_bpe(meta, tokens)
        add_bos_default = False
    else:
        bpe = _sentencepiece_bpe(meta, tokens)
        # Older SentencePiece files have no flag; llama.cpp and transformers both add BOS then.
        add_bos_default = True
    spelled, vocab = bpe.spelled, bpe.vocab

    # Added tokens are matched whole in the text before the model runs; without them "<|im_start|>" is cut into
    # pieces. In a byte-level vocabulary, a CONTROL token written outside the byte alphabet is a llama.cpp mislabel
    # (transformers skips it; adding it would need an id past the vocabulary), and a USER_DEFINED one counts only if
    # its raw text is a vocabulary entry. (llama.cpp would match both whole; we follow transformers.)
    special = [
        AddedToken(token, normalized=False, special=True)
        for token, kind in zip(tokens, token_types, strict=True)
        if kind == _CONTROL and token in vocab
    ]
    user_defined = [
        AddedToken(token, normalized=False, special=False)
        for token, kind in zip(tokens, token_types, strict=True)
        if kind == _USER_DEFINED and token in vocab
    ]
    # transformers also registers the bos/eos/unk/pad tokens as special whatever their type, so they too are
    # matched whole and skipped when decoding with skip_special_tokens. It adds them even when their text is not
    # in the vocabulary (giving them new ids); we skip those, as a new id has no embedding row.
    named = {key: _token_id(meta, key, len(tokens)) for key in _NAMED_SPECIAL_IDS}
    already = {token.content for token in special}
    for token_id in named.values():
        if token_id is not None and tokens[token_id] in vocab and tokens[token_id] not in already:
            special.append(AddedToken(tokens[token_id], normalized=False, special=True))
            already.add(tokens[token_id])
    # The library builds everything but the big vocabulary and merges, on a model of just the added tokens with
    # their real ids (an added token found in the model's vocabulary keeps its id there).
    # No unk_token in either case, as transformers builds them: a byte-level vocabulary covers every byte, and
    # SentencePiece falls back to its <0xNN> pieces. (llama.cpp would emit <unk> where those are missing too.)
    added_vocab = {token.content: vocab[token.content] for token in special + user_defined}
    if bpe.unk_token is not None and bpe.unk_token in vocab:
        added_vocab[bpe.unk_token] = vocab[bpe.unk_token]
    tokenizer = Tokenizer(models.BPE(vocab=added_vocab, merges=[], fuse_unk=bpe.sentencepiece,
                                     byte_fallback=bpe.sentencepiece, ignore_merges=bpe.ignore_merges,
                                     unk_token=bpe.unk_token if bpe.unk_token in added_vocab else None))
    if bpe.normalizer is not None:
        tokenizer.normalizer = bpe.normalizer
    tokenizer.pre_tokenizer = bpe.pre_tokenizer
    tokenizer.decoder = bpe.decoder
    tokenizer.add_special_tokens(special)
    tokenizer.add_tokens(user_defined)

    add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", add_bos_default))
    add_eos = bool(meta.get("tokenizer.ggml.add_eos_token", False))
    ends: dict[str, tuple[str, int] | None] = {}
    for key, on in (("bos_token_id", add_bos), ("eos_token_id", add_eos)):
        token_id = named[key]
        if on and token_id is None:
            # transformers silently drops the flag; a model that expects BOS and never gets it degrades quietly.
            raise InputError(f"GGUF sets tokenizer.ggml.add_{key[:3]}_token but has no tokenizer.ggml.{key}")
        ends[key] = None if token_id is None else (spelled[token_id], token_id)

    document = json.loads(tokenizer.to_str())
    document["post_processor"] = _post_processor(add_bos, add_eos, ends["bos_token_id"], ends["eos_token_id"])
    text = _with_vocab_and_merges(document, bpe)
    # Load it back once, so a file the tokenizers library would refuse fails here rather than on the device.
    if load_check:
        try:
            Tokenizer.from_str(text)
        except Exception as exc:
            raise InputError(f"the tokenizer.json rebuilt from the GGUF does not load: {exc}") from exc
    return text
