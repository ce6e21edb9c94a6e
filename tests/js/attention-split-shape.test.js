// attention_split.wgsl's shape (grids.js attentionSplitShape): a workgroup takes GROUP query heads of one kv head, so
// each key and value it reads serves GROUP heads; the workgroup (GROUP * SPLIT * TP threads) and its arrays stay
// within the tuning's caps. The kernel itself is tested against numpy in tests/kernels/test_attention_split.py.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { attentionSplitGrid, attentionSplitShape } from '../../app/engine/gpu/grids.js';
import { TUNING } from '../../app/engine/gpu/pipelines.js';

const CAP = { WG: 256, SPLIT: 32 };

test('the models we ship and test: a kv head\'s query heads share a workgroup', () => {
  // [name, heads, kv heads, head_dim, expected GROUP, SPLIT, TP], worked out by hand from the rules
  const cases = [
    ['Qwen2.5-3B', 16, 2, 128, 8, 32, 1], // 8 x 32 x 1 = 256 threads
    ['Qwen2.5-1.5B', 12, 2, 128, 6, 32, 1], // 6 x 32 = 192: a 7th head would not divide 6
    ['SmolLM2-135M', 9, 3, 64, 3, 32, 2], // 3 x 32 = 96 pairs, two threads each
    ['gemma3-270m', 4, 1, 256, 4, 32, 2], // 4 heads x 64 vec4 columns = 256
    ['MHA', 8, 8, 64, 1, 32, 8], // no grouping: 8 threads per position, as before
    ['wide heads', 16, 2, 256, 4, 32, 2], // 8 per kv head, but 8 x 64 columns > 256: GROUP 4
  ];
  for (const [name, heads, kv, d, GROUP, SPLIT, TP] of cases) {
    const shape = attentionSplitShape(Number(d), Number(heads), Number(kv), CAP);
    assert.deepEqual(shape, { GROUP, SPLIT, TP, D4: Number(d) / 4 }, String(name));
    assert.deepEqual(attentionSplitGrid(Number(heads), 4096, shape), [Number(heads) / Number(GROUP), 4096 / Number(SPLIT), 1]);
  }
});

test('every shape keeps within the caps and divides the heads', () => {
  for (const d of [8, 12, 64, 128, 256]) for (const kv of [1, 2, 3, 8]) for (const perKv of [1, 2, 3, 4, 5, 6, 7, 8, 12, 16]) {
    for (const cap of [CAP, TUNING.attentionSplit, { WG: 64, SPLIT: 16 }]) {
      const s = attentionSplitShape(d, kv * perKv, kv, cap);
      const wg = s.GROUP * s.SPLIT * s.TP;
      assert.ok(perKv % s.GROUP === 0, `GROUP ${s.GROUP} divides ${perKv}`);
      assert.ok(s.GROUP * s.D4 <= 256 || s.GROUP === 1, `d ${d}: ${s.GROUP} heads' columns fit`);
      assert.ok(wg <= cap.WG && s.SPLIT <= cap.SPLIT, `d ${d}, ${perKv} per kv: ${JSON.stringify(s)} within ${JSON.stringify(cap)}`);
      assert.ok(Number.isInteger(Math.log2(s.SPLIT)) && Number.isInteger(Math.log2(s.TP)) && s.TP <= 8);
    }
  }
});
