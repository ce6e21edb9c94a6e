// The JS tokenizer (app/engine/tokenizer.js over @huggingface/tokenizers) must give the ids and text that Python's
// `tokenizers` gives on the same tokenizer.json: the real SmolLM2 package and tests/tiny_models.py's tokenizer.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { TextTokenizer } from '../../app/engine/tokenizer.js';
import { FIELD_TEXT } from './helpers/field-text.js';
import { oracle, smollm2Package, tinyTokenizer } from './helpers/python.js';
import { readJson, vendor } from './helpers/vendor.js';

/** @type {{name: string, path: () => Promise<string>}[]} */
const TOKENIZERS = [
  { name: 'SmolLM2', path: async () => join(await smollm2Package(), 'tokenizer.json') },
  { name: 'tiny', path: async () => (await tinyTokenizer()).path },
];

/** Control characters, lone surrogates and other text that may not round-trip but must encode alike. */
const ODD_TEXT = ['bell\x07 and\x04eot', '\x00null', 'a'.repeat(300), ' '.repeat(65)];

for (const { name, path } of TOKENIZERS) {
  describe(`${name} tokenizer`, () => {
    /** @type {string} */ let file;
    /** @type {TextTokenizer} */ let tok;
    before(async () => {
      file = await path();
      tok = new TextTokenizer(vendor.Tokenizer, readJson(file));
    });

    test('encodes field text to the same ids as Python tokenizers', async () => {
      const texts = [...FIELD_TEXT, ...ODD_TEXT];
      const { ids } = await oracle('encode', { tokenizer: file, texts });
      const mismatches = texts.filter((t, i) => JSON.stringify(tok.encode(t)) !== JSON.stringify(ids[i]));
      assert.deepEqual(mismatches, [], `${mismatches.length} of ${texts.length} texts encode differently`);
    });

    test('decodes to the same text, skipping special tokens, including cut-off multi-byte characters', async () => {
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
      const mismatches = lists.filter((ids, i) => tok.decode(ids) !== texts[i]);
      assert.deepEqual(mismatches, [], `${mismatches.length} of ${lists.length} id lists decode differently`);
      assert.equal(tok.decode([]), '');
    });

    test('round-trips ordinary text', () => {
      for (const text of FIELD_TEXT.filter((t) => !t.includes('<|'))) assert.equal(tok.decode(tok.encode(text)), text);
    });

    test('maps special tokens to ids and back', () => {
      const id = tok.tokenToId('<|im_end|>');
      assert.equal(typeof id, 'number');
      assert.equal(tok.idToToken(/** @type {number} */ (id)), '<|im_end|>');
      assert.deepEqual(tok.encode('<|im_end|>'), [id]);
    });
  });
}
