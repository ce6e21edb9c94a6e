// A layer's q, k, v weights as one stacked tensor: stored back to back by `fieldllm prepare` (model_prep/plan.py), so
// the WebGPU engine binds them as a view of the shard instead of copying them at load (weights.js stackRows), and
// probe.js counts no copy for them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { requirements } from '../../app/engine/gpu/probe.js';
import { TUNING } from '../../app/engine/gpu/pipelines.js';
import { PLANES } from '../../app/engine/gpu/package.js';
import { backToBack, stackRows } from '../../app/engine/gpu/weights.js';
import { smollm2Package } from './helpers/python.js';

const DEVICE = /** @type {any} */ ({ limits: { maxStorageBufferBindingSize: 1 << 30 } });

/** @param {any} manifest @param {string} name */
function planesOf(manifest, name) {
  const t = manifest.tensors[name];
  return PLANES[/** @type {keyof typeof PLANES} */ (t.storage)].map((p) => [t.chunks[0].file, ...t.chunks[0].planes[p]]);
}

test('the default package stores every layer\'s q, k, v back to back, so nothing is copied to stack them', async () => {
  const manifest = JSON.parse(readFileSync(join(await smollm2Package(), 'manifest.json'), 'utf8'));
  const layers = manifest.config.num_layers;
  for (let i = 0; i < layers; i++) {
    const trio = ['q', 'k', 'v'].map((x) => planesOf(manifest, `blk.${i}.attn_${x}.weight`));
    assert.ok(backToBack(/** @type {any} */ (trio)), `layer ${i}`);
  }
  assert.equal(requirements(manifest, 256, 128, TUNING).stacked, 0);
  // the same package with layer 0's k moved elsewhere: that layer's three are copied again, and counted
  const moved = structuredClone(manifest);
  const k = moved.tensors['blk.0.attn_k.weight'].chunks[0];
  for (const p of Object.keys(k.planes)) k.planes[p] = [k.planes[p][0] + 1 << 20, k.planes[p][1]];
  const copy = ['q', 'k', 'v'].flatMap((x) => planesOf(manifest, `blk.0.attn_${x}.weight`)).reduce((s, p) => s + p[2], 0);
  assert.equal(requirements(moved, 256, 128, TUNING).stacked, copy);
});

test('stackRows: planes back to back in one buffer become a view (no buffer, no copy) of the stacked rows', () => {
  const shard = /** @type {any} */ ({ label: 'shard' });
  const other = /** @type {any} */ ({ label: 'other' });
  const cols = 64; // q4: 32 bytes of qweight and 8 of scales per row
  /** @param {number} rows @param {[any, number][]} at */
  const tensor = (rows, at) => ({ name: 't', storage: /** @type {const} */ ('q4'), rows, cols,
    chunks: [{ rowStart: 0, rows, planes: at.map(([buffer, offset], j) => ({ buffer, offset, size: rows * [32, 8][j] })) }] });
  // q (8 rows), k and v (2 rows each): qweight planes at 0, 256, 320; scales at 512, 576, 592
  const q = tensor(8, [[shard, 0], [shard, 512]]);
  const kk = tensor(2, [[shard, 256], [shard, 576]]);
  const v = tensor(2, [[shard, 320], [shard, 592]]);
  const view = stackRows(DEVICE, 'qkv', [q, kk, v]);
  assert.ok(view);
  assert.equal(view.buffer, null);
  assert.deepEqual(view.tensor.chunks[0].planes, [{ buffer: shard, offset: 0, size: 384 }, { buffer: shard, offset: 512, size: 96 }]);
  assert.equal(view.tensor.rows, 12);
  // a gap, or another buffer: not back to back (stackRows would copy; backToBack says no)
  const gap = [q, kk, tensor(2, [[shard, 384], [shard, 592]])];
  const elsewhere = [q, kk, tensor(2, [[other, 320], [shard, 592]])];
  for (const trio of [gap, elsewhere]) {
    assert.equal(backToBack(trio.map((t) => t.chunks[0].planes.map((p) => [p.buffer, p.offset, p.size]))), false);
  }
});
