// app/engine/sampler.js and prng.js: greedy takes the GPU's argmax, sampling repeats for a seed, follows the
// softmax distribution, keeps only the top-p nucleus (ties by lowest id), and validates its settings like Python.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { InputError } from '../../app/engine/errors.js';
import { Prng } from '../../app/engine/prng.js';
import { Sampler } from '../../app/engine/sampler.js';

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
    assert.equal(s.pick({ token: 17 }), 17);
  });

  test('validates temperature, top_p and seed as model_prep.sampling does', () => {
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
      return Array.from({ length: 50 }, () => s.pick({ token: 0, logits }));
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
    for (let i = 0; i < n; i++) counts[s.sample(logits)] += 1;
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
      return new Set(Array.from({ length: 3000 }, () => s.sample(logits)));
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
    const ids = new Set(Array.from({ length: 2000 }, () => s.sample(logits)));
    assert.ok(ids.has(123));
    assert.ok(ids.size > 500, `only ${ids.size} distinct tokens`);
    const tight = new Sampler({ temperature: 1, topP: 0.1, seed: 5 });
    assert.ok(Array.from({ length: 200 }, () => tight.sample(logits)).every((id) => id === 123));
  });
});
