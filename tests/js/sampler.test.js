// app/engine/sampler.js and prng.js: greedy takes the GPU's argmax, sampling repeats for a seed, follows the
// softmax distribution, keeps only the top-p nucleus (ties by lowest id), and validates its settings like Python;
// logit_bias, penalties, the grammar's mask and top_logprobs apply in model_prep/reference/sampling.py's order (same picks and
// log-probabilities as Python's), and top_k / min_p keep the tokens sampling.py keeps.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { InputError } from '../../app/engine/errors.js';
import { Prng } from '../../app/engine/prng.js';
import { Sampler } from '../../app/engine/sampler.js';
import { oracle } from './helpers/python.js';

/** @param {number[]} values */
const f32 = (values) => Float32Array.from(values);

describe('Prng', () => {
  test('repeats for a seed, differs across seeds, stays in [0, 1)', () => {
    const a = new Prng(42), b = new Prng(42), c = new Prng(43), big = new Prng(2 ** 40 + 42);
    const xs = Array.from({ length: 1000 }, () => a.random());
    assert.deepEqual(xs, Array.from({ length: 1000 }, () => b.random()));
    assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => c.random()));
    assert.notDeepEqual(xs.slice(0, 5), Array.from({ length: 5 }, () => big.random()));
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  });

  test('accepts negative and zero seeds, refuses non-integers', () => {
    assert.ok(new Prng(0).random() >= 0);
    assert.notEqual(new Prng(-1).random(), new Prng(1).random());
    assert.throws(() => new Prng(1.5), RangeError);
  });
});

describe('Sampler', () => {
  test('greedy returns the token forward() computed and needs no logits', () => {
    const s = new Sampler({ temperature: 0 });
    assert.equal(s.greedy, true);
    assert.equal(s.needsLogits, false);
    assert.deepEqual(s.pick({ token: 17, logprob: -0.25 }), { token: 17, logprob: -0.25, top: [] });
  });

  test('validates temperature, top_p and seed as model_prep.reference.sampling does', () => {
    assert.throws(() => new Sampler({ temperature: -0.1 }), InputError);
    assert.throws(() => new Sampler({ temperature: NaN }), InputError);
    assert.throws(() => new Sampler({ topP: 0 }), InputError);
    assert.throws(() => new Sampler({ topP: 1.01 }), InputError);
    assert.throws(() => new Sampler({ seed: 0.5 }), InputError);
  });

  test('the same seed gives the same tokens', () => {
    const logits = f32(Array.from({ length: 500 }, (_, i) => Math.sin(i) * 3));
    const draw = (/** @type {number} */ seed, /** @type {number} */ topP) => {
      const s = new Sampler({ temperature: 0.8, topP, seed });
      return Array.from({ length: 50 }, () => s.pick({ token: 0, logits }).token);
    };
    for (const topP of [1, 0.9, 0.3]) {
      assert.deepEqual(draw(7, topP), draw(7, topP));
      assert.notDeepEqual(draw(7, topP), draw(8, topP));
    }
  });

  test('draws follow softmax(logits / temperature)', () => {
    const logits = f32([2, 1, 0, -1]);
    const temperature = 0.7;
    const p = [...logits].map((x) => Math.exp(x / temperature));
    const z = p.reduce((a, b) => a + b);
    const s = new Sampler({ temperature, seed: 1 });
    const n = 40000;
    const counts = [0, 0, 0, 0];
    for (let i = 0; i < n; i++) counts[s.pick({ token: 0, logits }).token] += 1;
    counts.forEach((c, i) => {
      const expected = (n * p[i]) / z;
      assert.ok(Math.abs(c - expected) < 5 * Math.sqrt(expected) + 5, `token ${i}: ${c} vs ${expected.toFixed(0)}`);
    });
  });

  test('top_p keeps the smallest most-likely prefix reaching the mass, ties by lowest id', () => {
    // probabilities at temperature 1 (before normalization): ids 3 and 1 tie at the top, then 0, then 2
    const logits = f32([Math.log(2), Math.log(4), Math.log(1), Math.log(4)]);
    const seen = (/** @type {number} */ topP) => {
      const s = new Sampler({ temperature: 1, topP, seed: 3 });
      return new Set(Array.from({ length: 3000 }, () => s.pick({ token: 0, logits }).token));
    };
    assert.deepEqual([...seen(0.3)], [1]); // 4/11 >= 0.3: the lower id of the tie alone
    assert.deepEqual([...seen(0.5)].sort(), [1, 3]); // 8/11
    assert.deepEqual([...seen(0.9)].sort(), [0, 1, 3]); // 10/11
    assert.deepEqual([...seen(1)].sort(), [0, 1, 2, 3]);
  });

  test('top_p over a large vocabulary finds nuclei well below the first cutoff', () => {
    // a flat tail: 20000 tokens at logit 0 and one at 10; top_p 0.999 needs most of the tail
    const logits = new Float32Array(20001);
    logits[123] = 10;
    const s = new Sampler({ temperature: 1, topP: 0.999, seed: 5 });
    const ids = new Set(Array.from({ length: 2000 }, () => s.pick({ token: 0, logits }).token));
    assert.ok(ids.has(123));
    assert.ok(ids.size > 500, `only ${ids.size} distinct tokens`);
    const tight = new Sampler({ temperature: 1, topP: 0.1, seed: 5 });
    assert.ok(Array.from({ length: 200 }, () => tight.pick({ token: 0, logits }).token).every((id) => id === 123));
  });
});

/** bool[] -> the grammar's u32 bitmask. @param {boolean[]} allowed */
function maskOf(allowed) {
  const words = new Uint32Array(Math.ceil(allowed.length / 32));
  allowed.forEach((a, i) => { if (a) words[i >>> 5] |= 1 << (i & 31); });
  return words;
}

describe('Sampler: model_prep/reference/sampling.py order', () => {
  test('bias, then penalties over what was picked, then the mask; logprob and top_logprobs of that, as Python', async () => {
    const vocab = 70;
    let x = 7;
    const rand = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
    const steps = Array.from({ length: 12 }, (_, i) => ({
      logits: Array.from({ length: vocab }, () => Math.round((rand() * 8 - 4) * 64) / 64),
      allowed: i % 3 === 2 ? null : Array.from({ length: vocab }, (_, t) => t % (i % 3 === 0 ? 2 : 5) !== 1 || t === 69),
    }));
    /** @type {Record<string, any>[]} */
    const settings = [
      {},
      { logit_bias: { 3: 5, 40: -100, 68: 2.5 }, top_logprobs: 5 },
      { frequency_penalty: 1.5, presence_penalty: 0.5, top_logprobs: 20 },
      { frequency_penalty: -2, logit_bias: { 7: 3 }, top_logprobs: 3 },
    ];
    for (const o of settings) {
      const { picks } = await oracle('picks', { options: o, steps });
      const s = new Sampler({ frequencyPenalty: o.frequency_penalty, presencePenalty: o.presence_penalty,
        logitBias: /** @type {Record<string, number> | undefined} */ (/** @type {unknown} */ (o.logit_bias)) ?? null, topLogprobs: o.top_logprobs ?? 0 });
      assert.equal(s.needsLogits, Object.keys(o).length > 0);
      steps.forEach((step, i) => {
        const logits = Float32Array.from(step.logits);
        const mask = step.allowed ? maskOf(step.allowed) : null;
        // no logits needed: the GPU's (here: Python's) masked argmax is taken as it is
        const got = s.needsLogits ? s.pick({ token: -1, logits }, mask)
          : s.pick({ token: picks[i].token, logprob: picks[i].logprob }, mask);
        const want = picks[i];
        const where = `${JSON.stringify(o)} step ${i}`;
        assert.equal(got.token, want.token, where);
        assert.ok(Math.abs(got.logprob - want.logprob) < 1e-9, where);
        assert.deepEqual(got.top.map(([t]) => t), want.top.map((/** @type {number[]} */ [t]) => t), where);
        got.top.forEach(([, lp], k) => assert.ok(Math.abs(lp - want.top[k][1]) < 1e-9, where));
      });
    }
  });

  test('top_k, then top_p, then min_p keep what sampling.py keeps', () => {
    // probabilities (temperature 1) proportional to 8, 4, 4, 2, 1, 1 for ids 5, 1, 2, 0, 3, 4
    const logits = Float32Array.from([2, 4, 4, 1, 1, 8].map(Math.log));
    /** @param {import('../../app/engine/sampler.js').SamplerOptions} o */
    const seen = (o) => {
      const s = new Sampler({ temperature: 1, seed: 11, ...o });
      return [...new Set(Array.from({ length: 4000 }, () => s.pick({ token: -1, logits }).token))].sort((a, b) => a - b);
    };
    assert.deepEqual(seen({ topK: 2 }), [1, 5]); // 8 and the lower id of the 4s
    assert.deepEqual(seen({ topK: 3 }), [1, 2, 5]);
    assert.deepEqual(seen({ topK: 3, topP: 0.6 }), [1, 5]); // of the top 3's mass 16: 8 + 4 reaches 9.6
    assert.deepEqual(seen({ topP: 0.7 }), [1, 2, 5]); // of 20: 8 + 4 + 4 = 16 >= 14
    assert.deepEqual(seen({ minP: 0.3 }), [1, 2, 5]); // >= 0.3 x 8
    assert.deepEqual(seen({ minP: 0.9 }), [5]);
    assert.deepEqual(seen({ topP: 0.5, minP: 0.1 }), [1, 5]);
    assert.deepEqual(seen({ topK: 4, minP: 0.26 }), [1, 2, 5]); // id 0: 2 < 0.26 x 8
    assert.deepEqual(seen({ topK: 4, minP: 0.2 }), [0, 1, 2, 5]);
  });

  test('sampling under a mask draws only allowed tokens; a mask with none allowed throws', () => {
    const logits = Float32Array.from([5, 4, 3, 2, 1, 0]);
    const allowed = [false, true, false, true, false, false];
    const s = new Sampler({ temperature: 1.5, seed: 2 });
    const drawn = new Set(Array.from({ length: 500 }, () => s.pick({ token: -1, logits }, maskOf(allowed)).token));
    assert.deepEqual([...drawn].sort(), [1, 3]);
    assert.throws(() => s.pick({ token: -1, logits }, maskOf(allowed.map(() => false))), /allows no token/);
  });

  test('validates top_k, min_p, penalties and top_logprobs as Python does', () => {
    for (const bad of [{ topK: -1 }, { topK: 1.5 }, { minP: 1.5 }, { frequencyPenalty: 2.5 }, { presencePenalty: -3 },
      { topLogprobs: 21 }]) {
      assert.throws(() => new Sampler(bad), InputError, JSON.stringify(bad));
    }
  });
});
