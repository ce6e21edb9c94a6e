// app/engine/stop-text.js must release text exactly as model_prep/reference/engine.py `Engine.stream` does: the same
// pieces for the same token ids, stop strings cut out, text that could become a stop string held back, incomplete
// UTF-8 characters held back. The Python side runs the reference's stream() over the same scripted ids.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { StopTextStream, stopOverlap } from '../../app/engine/stop-text.js';
import { TextTokenizer } from '../../app/engine/tokenizer.js';
import { oracle, smollm2Package } from './helpers/python.js';
import { readJson, vendor } from './helpers/vendor.js';

describe('stopOverlap', () => {
  test('is the longest suffix that is a proper prefix of a stop string', () => {
    assert.equal(stopOverlap('the end of', ['of the']), 2);
    assert.equal(stopOverlap('abc', ['c', 'bcd']), 2);
    assert.equal(stopOverlap('abc', ['abc']), 0); // only proper prefixes: a whole stop string is found, not held
    assert.equal(stopOverlap('xab', ['abc']), 2);
    assert.equal(stopOverlap('abc', []), 0);
    assert.equal(stopOverlap('', ['x']), 0);
  });
});

/** Scenarios: completion text, stop strings, max_tokens (the script is the text's ids; EOS follows it). */
const SCENARIOS = [
  { text: 'Check the impeller for cavitation damage.', stop: [], maxTokens: 100 },
  { text: 'Check the impeller for cavitation damage.', stop: [], maxTokens: 4 },
  { text: 'Step 1: isolate.\nStep 2: drain.\nStep 3: open.', stop: ['Step 3'], maxTokens: 100 },
  { text: 'Step 1: isolate.\nStep 2: drain.', stop: ['Step 3'], maxTokens: 100 }, // a prefix "Step " held, released
  { text: 'Dose 15 mg/kg ### not shown', stop: ['###', 'mg/kg ##'], maxTokens: 100 },
  { text: 'Fever 🔥🔥 then 发电机过载 and 👷🏾‍♀️ done', stop: ['发电'], maxTokens: 100 },
  { text: 'Fever 🔥🔥 then 发电机过载 and 👷🏾‍♀️ done', stop: [], maxTokens: 9 },
  { text: 'ends with a partial stop END', stop: ['END!'], maxTokens: 100 },
  { text: 'stop at the very start', stop: ['stop'], maxTokens: 100 },
  { text: 'overlapping stops: abcabd', stop: ['abd', 'cab'], maxTokens: 100 },
  { text: '   spaces   everywhere   ', stop: ['  e'], maxTokens: 100 },
];

describe('StopTextStream', () => {
  /** @type {TextTokenizer} */ let tok;
  /** @type {string} */ let file;
  before(async () => {
    file = join(await smollm2Package(), 'tokenizer.json');
    tok = new TextTokenizer(vendor.Tokenizer, readJson(file));
  });

  test('releases the same pieces as the reference engine stream', async () => {
    for (const { text, stop, maxTokens } of SCENARIOS) {
      const script = tok.encode(text);
      const { chunks } = await oracle('stream', { tokenizer: file, script, stop, max_tokens: maxTokens });
      const stream = new StopTextStream((ids) => tok.decode(ids), stop);
      /** @type {string[]} */
      const pieces = [];
      for (const id of script.slice(0, maxTokens)) {
        const piece = stream.push(id);
        if (piece) pieces.push(piece.text);
        if (stream.stopped) break;
      }
      const tail = stream.flush();
      if (tail) pieces.push(tail.text);
      const where = `${JSON.stringify(text)} stop=${JSON.stringify(stop)} max=${maxTokens}`;
      const expected = chunks.slice(0, -1).map((/** @type {{text: string}} */ c) => c.text);
      assert.deepEqual(pieces, expected, where);
      const last = chunks.at(-1);
      const finish = stream.stopped ? 'stop' : script.length <= maxTokens ? 'stop' : 'length';
      assert.equal(finish, last.finish_reason, where);
      assert.equal(stream.tokens.length, last.completion_tokens, where);
    }
  });

  test('never releases a U+FFFD for a character still arriving', () => {
    const ids = tok.encode('🔥👷🏾‍♀️发电');
    const stream = new StopTextStream((x) => tok.decode(x), []);
    let text = '';
    for (const id of ids) text += stream.push(id)?.text ?? '';
    assert.equal(text + (stream.flush()?.text ?? ''), '🔥👷🏾‍♀️发电');
    assert.ok(!text.includes('\ufffd'));
  });
});
