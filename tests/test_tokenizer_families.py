"""Llama 3 and Qwen GGUFs: the tokenizer.json fieldllm ships must encode as the family's own tokenizer does.

For each family (tests/tiktoken_families.py) we write the GGUF llama.cpp's converter would write (byte-level "gpt2"
vocabulary, merges, pre-tokenizer name, special tokens as CONTROL / USER_DEFINED), prepare it as users do, and
compare the package's tokenizer.json, in Python (`tokenizers`) and in Node (app/engine/tokenizer.js), with tiktoken
(the implementation these vocabularies were made with) and with transformers' TikTokenConverter on the same ranks.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_tokenizer_parity import CORPUS, LOSSY
from tiktoken_families import Family, llama3_family, qwen_family
from tokenizers import Tokenizer

from model_prep.plan import Options
from model_prep.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]

# Beyond the parity corpus: the places where these splits differ from GPT-2's and from each other.
EXTRA: list[str] = [
    # CJK: runs of ideographs, kana, hangul, full-width forms and CJK punctuation, mixed with Latin and digits
    "泵站3号机组于2024年11月23日14时05分跳闸，原因：过电流保护动作。",
    "检查轴承温度（正常＜80℃），如超限立即停机！“注意安全”",
    "東京都千代田区でポンプが停止しました。カタカナとひらがなと漢字。ｶﾀｶﾅ半角",
    "서울특별시 강남구 펌프장 3호기 정지. 점검 필요합니다",
    "ＡＢＣ　全角スペース　と１２３４５全角数字",
    "中文English混合Text测试123abc",
    # words Llama 3's merges cannot build but its vocabulary holds whole (its tokenizer looks words up first)
    "Việc này hợp lý, nhiều điều ở Việt Nam. Bu iş değiştirilmektedir. Характер использования.",
    # emoji: ZWJ sequences, skin tones, flags, keycaps, variation selectors, next to letters and digits
    "👨‍👩‍👧‍👦👩🏽‍🚒🧑🏿‍🤝‍🧑🏻 🏳️‍🌈 🏴‍☠️ 🇺🇸🇯🇵🇨🇳",
    "keycaps 1️⃣2️⃣#️⃣ and ✔︎ vs ✔️, ☂ ☂️",
    "ok👍ok 👍👍👍 x😀y 2😀3 😀😀😀😀😀😀😀😀",
    "🔥🔥 fire\n🔥\t🔥  🔥",
    # digits: runs cut in threes (Llama 3) or one by one (Qwen), and what counts as a digit (\p{N})
    "1 12 123 1234 12345 123456 1234567 12345678 123456789 1234567890",
    "0000000000000000000000000000000000000000001",
    "abc123def4567ghi89 x2y22z222w2222",
    "$1,234,567.89 €0.99 -273.15 +42 1e10 3/4 50%",
    "١٢٣٤٥ ٣ ۱۲۳ १२३४ ²³⁴ ½¼ Ⅻ ⑫ 𝟙𝟚𝟛 ９９９",
    # whitespace runs: spaces, tabs, newlines and carriage returns mixed, before words, digits and punctuation
    "a \t\n b\t \t\nc  \n\n  d",
    "\t\t\n\n  \n\t x",
    "word" + " " * 17 + "word" + "\t" * 9 + "word" + "\n" * 7 + "word",
    "   \r\n\r\n   x\r\r\ry",
    "x \n \n \n 1 \n  2\n   3",
    "  !!  ??\n\n..  ,,",
    "nbsp\u00a0\u00a0em\u2003\u2003ideographic\u3000\u3000line\u2028sep\u2029para\u0085nel\x0bvt\x0cff",
    "trailing tab\t",
    "\n",
    "\t",
    " " * 40,
    # contractions, any case: (?i:'s|'t|'re|'ve|'m|'ll|'d)
    "IT'S WE'RE THEY'VE I'M YOU'LL HE'D DON'T",
    "It'S We'Re They'Ve I'M You'Ll He'D Don'T",
    "o'NEIL's rock'n'roll 'S'T'RE'VE'M'LL'D ''s '''t",
    "it’s WE’RE (curly apostrophes are no contractions)",
    "'sup 'tis 'em 'll",
    # special tokens of both families inside text, whole and broken
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nPump P-101?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|reserved_special_token_0|><|reserved_special_token_250|> <|python_tag|>call()<|eom_id|>",
    "<|begin_of_text|<|eot_id|>> <|end_of_text|>x<|finetune_right_pad_id|>",
    "<|im_start|>assistant\n<think>\nThe pump.\n</think>\n\n<tool_call>\n{\"name\": \"x\"}\n</tool_call><|im_end|>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|><|repo_name|>r<|file_sep|>a.py<|vision_start|><|image_pad|>",
    "<think></think><think> </think>< think> <think",
    "<|endoftext|><|endoftext|> <|im_end|>\n<|im_start|>",
]

TEXTS = CORPUS + LOSSY + EXTRA
LOSSLESS = CORPUS + EXTRA

FAMILIES: dict[str, Callable[[], Family | None]] = {"llama3": llama3_family, "qwen": qwen_family}
PACKAGES = {"llama3": "llama-models", "qwen": "dashscope"}


@dataclass
class Prepared:
    family: Family
    tokenizer_json: Path  # the prepared package's
    ours: Tokenizer
    tiktoken: Any  # tiktoken.Encoding
    transformers: Any  # PreTrainedTokenizerFast


@pytest.fixture(scope="module", params=list(FAMILIES))
def prepared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    from tiktoken_families import write_gguf

    family = FAMILIES[request.param]()
    if family is None:
        pytest.skip(f"{PACKAGES[request.param]} (its tiktoken rank file) is not installed: run scripts/setup-python "
                    "test")
    folder = tmp_path_factory.mktemp(family.name)
    package = prepare(write_gguf(family, folder / f"{family.name}.gguf"), folder / "package", Options())
    path = package / "tokenizer.json"
    return Prepared(family, path, Tokenizer.from_file(str(path)), family.tiktoken_encoding(),
                    family.transformers_tokenizer)


def _expected(p: Prepared, texts: list[str]) -> list[list[int]]:
    """tiktoken's ids, with special tokens in the text read as special tokens (as chat templates write them)."""
    # one by one: tiktoken's encode_batch spends seconds on its thread pool for short texts
    return [p.tiktoken.encode(text, allowed_special="all") for text in texts]


def _mismatches(texts: list[str], got: list[list[int]], want: list[list[int]], who: str) -> list[str]:
    return [f"{text!r}: {who} {g} != tiktoken {w}" for text, g, w in zip(texts, got, want, strict=True) if g != w]


@pytest.mark.slow
def test_gguf_holds_what_llama_cpp_writes(prepared: Prepared) -> None:
    family, ours = prepared.family, prepared.ours
    merges = json.loads(prepared.tokenizer_json.read_text(encoding="utf-8"))["model"]["merges"]
    # Llama 3: every split (Meta's tokenizer.json has 280147); Qwen: one per token past the 256 bytes (Qwen2's)
    assert len(merges) == (280147 if family.name == "llama3" else len(family.ranks) - 256)
    assert ours.get_vocab_size() == family.vocab_size
    for text, token_id in family.specials.items():
        assert ours.token_to_id(text) == token_id
        assert ours.encode(text, add_special_tokens=False).ids == [token_id]


@pytest.mark.slow
def test_ids_match_tiktoken_and_transformers(prepared: Prepared) -> None:
    want = _expected(prepared, TEXTS)
    ours = [e.ids for e in prepared.ours.encode_batch(TEXTS, add_special_tokens=False)]
    theirs = prepared.transformers(TEXTS, add_special_tokens=False)["input_ids"]
    problems = _mismatches(TEXTS, ours, want, "fieldllm") + _mismatches(TEXTS, theirs, want, "transformers")
    assert not problems, "\n".join(problems)
    # The digit rule in use is the family's own (parity would also hold were both to cut digits alike).
    digits = [prepared.ours.decode([i]) for i in prepared.ours.encode("1234567", add_special_tokens=False).ids]
    assert digits == (["123", "456", "7"] if prepared.family.name == "llama3" else list("1234567"))


def _vocabulary_texts(family: Family) -> list[str]:
    """Every regular token that is whole UTF-8 text, as text."""
    texts = []
    for token in family.ranks:
        try:
            texts.append(token.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return texts


@pytest.mark.slow
def test_every_vocabulary_entry_encodes_alike(prepared: Prepared) -> None:
    """Each token that is whole UTF-8 text, encoded as text: here a merge order that cannot rebuild a token shows."""
    texts = _vocabulary_texts(prepared.family)
    want = [prepared.tiktoken.encode_ordinary(text) for text in texts]
    ours = [e.ids for e in prepared.ours.encode_batch(texts, add_special_tokens=False)]
    problems = _mismatches(texts, ours, want, "fieldllm")
    assert not problems, f"{len(problems)} of {len(texts)}:\n" + "\n".join(problems[:20])


@pytest.mark.slow
def test_bos_and_decoding(prepared: Prepared) -> None:
    family, ours = prepared.family, prepared.ours
    bos = [family.specials[family.bos]] if family.add_bos else []
    for text, ids in zip(LOSSLESS, _expected(prepared, LOSSLESS), strict=True):
        assert ours.encode(text).ids == bos + ids, text
        assert ours.decode(ids, skip_special_tokens=False) == prepared.tiktoken.decode(ids) == text
    # control tokens are dropped when skipping special tokens; Qwen's USER_DEFINED <think> stays
    chat, text = {"qwen": ("<|im_start|>user\nhi<|im_end|>", "user\nhi"),
                  "llama3": ("<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", "user\n\nhi")}[family.name]
    assert ours.decode(_expected(prepared, [chat])[0], skip_special_tokens=True) == text
    if family.name == "qwen":
        think = ours.encode("<think>x</think>", add_special_tokens=False).ids
        assert ours.decode(think, skip_special_tokens=True) == "<think>x</think>"


@pytest.mark.slow
def test_js_tokenizer_gives_the_same_ids(prepared: Prepared, tmp_path: Path) -> None:
    """app/engine/tokenizer.js (npm @huggingface/tokenizers) on the package's tokenizer.json, in Node: the texts,
    and every 4th vocabulary entry as text (all of them would take seconds more)."""
    texts = TEXTS + _vocabulary_texts(prepared.family)[::4]
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    script = ("import {readFileSync} from 'node:fs';"
              "import {TextTokenizer} from './app/engine/tokenizer.js';"
              "import {importVendor} from './app/engine/vendor.js';"
              "const [tokenizerPath, textsPath] = process.argv.slice(1);"
              "const vendor = await importVendor();"
              "const tok = new TextTokenizer(vendor.Tokenizer, JSON.parse(readFileSync(tokenizerPath, 'utf8')));"
              "const texts = JSON.parse(readFileSync(textsPath, 'utf8'));"
              "console.log(JSON.stringify(texts.map((t) => tok.encode(t))));")
    out = subprocess.run(["node", "--input-type=module", "-e", script, str(prepared.tokenizer_json), str(texts_file)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    problems = _mismatches(texts, json.loads(out), _expected(prepared, texts), "JS")
    assert not problems, f"{len(problems)} of {len(texts)}:\n" + "\n".join(problems[:20])
