// The JS tokenizer (app/engine/tokenizer.js over @huggingface/tokenizers) must give the ids and text that Python's
// `tokenizers` gives on the same tokenizer.json: the real SmolLM2 package, tests/tiny_models.py's tokenizer and the one
// prepare rebuilds from gemma-3-270m's GGUF (SentencePiece: a normalizer, byte fallback, 262144 tokens).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { TextTokenizer } from '../../app/engine/tokenizer.js';
import { FIELD_TEXT } from './helpers/field-text.js';
import { oracle, scratchDir, smollm2Package, tinyTokenizer } from './helpers/python.js';
import { readJson, vendor } from './helpers/vendor.js';

// byteFallback: a SentencePiece vocabulary's <0xNN> pieces. An incomplete UTF-8 sequence they leave at the end of a
// cut-off list reads as one U+FFFD in JS (TextDecoder) but one per byte in Rust's ByteFallback; streaming holds such
// text back either way, so a trailing run of U+FFFD counts as one there.
/** @type {{name: string, path: () => Promise<string>, special: string, byteFallback?: boolean}[]} */
const TOKENIZERS = [
  { name: 'SmolLM2', path: async () => join(await smollm2Package(), 'tokenizer.json'), special: '<|im_end|>' },
  { name: 'tiny', path: async () => (await tinyTokenizer()).path, special: '<|im_end|>' },
  { name: 'Gemma 3', path: gemma3Tokenizer, special: '<end_of_turn>', byteFallback: true },
];

/** The Gemma 3 tokenizer.json, or '' where its GGUF package is not installed (the tests are then skipped). */
async function gemma3Tokenizer() {
  const r = await oracle('gemma3-tokenizer', { out: join(scratchDir(), 'gemma3-tokenizer.json') });
  if (r.skip) console.log(`# Gemma 3 tokenizer tests skipped: ${r.skip}`);
  return r.skip ? '' : r.path;
}

/** Control characters, lone surrogates and other text that may not round-trip but must encode alike. */
const ODD_TEXT = ['bell\x07 and\x04eot', '\x00null', 'a'.repeat(300), ' '.repeat(65)];

for (const { name, path, special, byteFallback } of TOKENIZERS) {
  describe(`${name} tokenizer`, () => {
    /** @type {string} */ let file;
    /** @type {TextTokenizer} */ let tok;
    before(async () => {
      file = await path();
      if (file) tok = new TextTokenizer(vendor.Tokenizer, readJson(file));
    });

    test('encodes field text to the same ids as Python tokenizers', async (t) => {
      if (!file) return t.skip('not installed');
      const texts = [...FIELD_TEXT, ...ODD_TEXT];
      const { ids } = await oracle('encode', { tokenizer: file, texts });
      const mismatches = texts.filter((t, i) => JSON.stringify(tok.encode(t)) !== JSON.stringify(ids[i]));
      assert.deepEqual(mismatches, [], `${mismatches.length} of ${texts.length} texts encode differently`);
    });

    test('decodes to the same text, skipping special tokens, including cut-off multi-byte characters', async (t) => {
      if (!file) return t.skip('not installed');
      /** @type {number[][]} */
      const encoded = (await oracle('encode', { tokenizer: file, texts: FIELD_TEXT })).ids;
      const lists = encoded.filter((ids) => ids.length > 0);
      // every prefix of the emoji / CJK lines: streaming decodes these, with U+FFFD for incomplete characters
      const wide = /[\u3000-\u9fff\u{1f000}-\u{1ffff}]/u;
      encoded.forEach((ids, i) => {
        if (wide.test(FIELD_TEXT[i])) for (let n = 1; n < ids.length; n++) lists.push(ids.slice(0, n));
      });
      lists.push([0, 1, 2, 5, 6]); // special and ordinary ids side by side
      const { texts } = await oracle('decode', { tokenizer: file, ids: lists });
      /** @param {string} s */
      const tail = (s) => (byteFallback ? s.replace(/\uFFFD+$/u, '\uFFFD') : s);
      const mismatches = lists.filter((ids, i) => tail(tok.decode(ids)) !== tail(texts[i]));
      assert.deepEqual(mismatches, [], `${mismatches.length} of ${lists.length} id lists decode differently`);
      assert.equal(tok.decode([]), '');
    });

    test('round-trips ordinary text', (t) => {
      if (!file) return t.skip('not installed');
      for (const text of FIELD_TEXT.filter((t) => !t.includes('<|'))) assert.equal(tok.decode(tok.encode(text)), text);
    });

    test('maps special tokens to ids and back', (t) => {
      if (!file) return t.skip('not installed');
      const id = tok.tokenToId(special);
      assert.equal(typeof id, 'number');
      assert.equal(tok.idToToken(/** @type {number} */ (id)), special);
      assert.deepEqual(tok.encode(special), [id]);
    });
  });
}
