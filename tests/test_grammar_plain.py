"""Tokens with control bytes are kept out of every constrained answer (xgrammar 0.1.27 lets them into JSON strings,
where JSON forbids them), the same tokens on both sides."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from model_prep.reference import Decoding, load
from model_prep.reference.grammar import CONTROL_BYTES, plain_token_bits, vocab_from_tokenizer_json
from model_prep.reference.structured import from_request

ROOT = Path(__file__).resolve().parents[1]


def test_python_and_js_mask_the_same_tokens(smollm2_package: Path) -> None:
    tok = smollm2_package / "tokenizer.json"
    vocab_size = json.loads((smollm2_package / "manifest.json").read_text())["config"]["vocab_size"]
    py = plain_token_bits(vocab_from_tokenizer_json(json.loads(tok.read_text()), vocab_size))
    script = ("import {readFileSync} from 'node:fs';"
              "import {plainTokenBits, vocabFromTokenizerJson} from './app/engine/grammar.js';"
              "const [path, n] = process.argv.slice(1);"
              "const bits = plainTokenBits(vocabFromTokenizerJson(JSON.parse(readFileSync(path, 'utf8')), +n));"
              "console.log(JSON.stringify(Array.from(bits)));")
    out = subprocess.run(["node", "--input-type=module", "-e", script, str(tok), str(vocab_size)], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == py.tolist()
    banned = np.where(np.unpackbits(py.view(np.uint8), bitorder="little")[:vocab_size] == 0)[0]
    engine = load(smollm2_package, context=256)
    texts = [engine.decode([int(i)]) for i in banned]
    assert texts and all(any(ord(c) in CONTROL_BYTES for c in t) for t in texts)
    assert "\t" in texts and "\n" not in texts


def test_a_constrained_answer_never_holds_a_banned_token(smollm2_package: Path) -> None:
    engine = load(smollm2_package, context=256)
    grammars = engine.grammars()
    banned = set(np.where(np.unpackbits(grammars.plain.view(np.uint8), bitorder="little")[:grammars.vocab_size]
                          == 0)[0].tolist())
    # a strong push towards a tab: without the mask the model would write it into the string
    tab = engine.tokenizer.token_to_id("ĉ")
    s = from_request({"type": "json_schema", "json_schema": {"name": "n", "schema": {
        "type": "object", "properties": {"note": {"type": "string", "maxLength": 20}}, "required": ["note"]}}})
    done = engine.generate([{"role": "user", "content": "Write a note."}], max_tokens=40,
                           decoding=Decoding(grammar=s.grammar, logit_bias={tab: 100.0}))
    assert not banned & set(done.token_ids)
    assert json.loads(done.text)["note"] is not None
