// Every id in manifest generation.eos_token_ids ends generation in the JS engine (issue 12: Qwen2's <|endoftext|>
// beside <|im_end|>), as in model_prep/reference/engine.py (tests/test_end_ids.py): a fake model that answers with
// the package's second end id stops with finish_reason "stop" and nothing of it in the text.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';

import { Engine } from '../../app/engine/engine.js';
import { FakeModel } from './helpers/fake-model.js';
import { smollm2Package } from './helpers/python.js';
import { readPackage, vendor } from './helpers/vendor.js';

const USER = { role: 'user', content: 'Pump P-204 discharge pressure dropped. What do I check?' };
const REPLY = 'Check the strainer.';

/** @type {{manifest: any, tokenizerJson: any}} */
let pkg;

before(async () => {
  pkg = readPackage(await smollm2Package());
});

/**
 * An engine whose package declares end ids `ends`; its model answers REPLY, then `endId`.
 * @param {number[]} ends
 * @param {number} endId
 */
function makeEngine(ends, endId) {
  const manifest = { ...pkg.manifest, generation: { ...pkg.manifest.generation, eos_token_ids: ends } };
  const probe = Engine.fromParts({ model: /** @type {any} */ ({ manifest, context: 512 }), vendor, tokenizerJson: pkg.tokenizerJson });
  const marker = probe.tokenizer.encode('<|im_start|>assistant\n');
  const model = new FakeModel({ manifest, marker, reply: probe.tokenizer.encode(REPLY), context: 512 });
  model.eos = endId;
  return Engine.fromParts({ model, vendor, tokenizerJson: pkg.tokenizerJson });
}

test('the second end id stops generation as the first does', async () => {
  assert.deepEqual(pkg.manifest.generation.eos_token_ids, [2]); // SmolLM2: <|im_end|> only
  const endoftext = 0; // SmolLM2's <|endoftext|>
  for (const ends of [[2], [2, endoftext]]) {
    const engine = makeEngine(ends, ends.at(-1) ?? 2);
    const out = await engine.chat.completions.create({ messages: [USER], max_tokens: 64 });
    assert.equal(out.choices[0].finish_reason, 'stop');
    assert.equal(out.choices[0].message.content, REPLY);
  }
  // not declared: the same answer runs on to max_tokens, <|endoftext|> and all
  const engine = makeEngine([2], endoftext);
  const out = await engine.chat.completions.create({ messages: [USER], max_tokens: 12 });
  assert.equal(out.choices[0].finish_reason, 'length');
});
