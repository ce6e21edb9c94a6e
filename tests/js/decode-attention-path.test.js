// ops.js DecodeOps.attend: decode attention takes attention_decode.wgsl (one dispatch) while the step's cache holds at
// most the tuning's maxPositions positions, and attention_split.wgsl + attention_combine.wgsl beyond; both are
// recorded, and every step's grids (model.js decodeGrid, by bucket of the step's end) must dispatch exactly one of
// the two, each writing the attention output the o projection reads.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DecodeOps } from '../../app/engine/gpu/ops.js';
import { TUNING } from '../../app/engine/gpu/pipelines.js';
import { decodeGrid } from '../../app/engine/gpu/model.js';

const CONTEXT = 4096;
const config = /** @type {any} */ ({ num_heads: 16, num_kv_heads: 2, head_dim: 128, rope_layout: 'half' }); // 3B

/** Records the attention of layer 0 with fake GPU objects; bind groups keep their entries. @param {number} maxPositions */
function recordAttention(maxPositions) {
  const tuning = { ...TUNING, attentionDecode: { ...TUNING.attentionDecode, maxPositions } };
  const pipelines = { tuning, get: (/** @type {string} */ shader, /** @type {string} */ _entry,
    /** @type {Record<string, number>} */ constants) => ({ shader, constants, getBindGroupLayout: () => ({}) }) };
  const device = { createBindGroup: (/** @type {any} */ d) => d };
  const uniforms = { fixed: (/** @type {any} */ _layout, /** @type {any} */ values) => ({ name: 'params', values }) };
  const ops = new DecodeOps(/** @type {any} */ ({ device, pipelines, uniforms, config, context: CONTEXT, passTokens: 1 }));
  const buf = (/** @type {string} */ name) => ({ name });
  const s = /** @type {any} */ ({ positions: buf('positions'), ropeTable: buf('rope'), qkv: buf('qkv'), qkvBias: [buf('bias')],
    kCache: [buf('k')], vCache: [buf('v')], att: buf('att'), attnPart: buf('part') });
  ops.attend(s, 0, 'layer 0');
  return ops.dispatches.map((d) => {
    const grid = d.grid(1);
    const varies = d.grid(1, 1).some((v, i) => v !== grid[i]);
    return { ...d, grid, byEnd: varies ? { of: d.grid, grids: new Map() } : null };
  });
}

/** @param {any} d @returns {string[]} names of the buffers a dispatch binds */
const bound = (d) => d.bindGroup.entries.map((/** @type {any} */ e) => e.resource.buffer.name);

test('one dispatch up to maxPositions, split + combine beyond: exactly one path per step', () => {
  const program = recordAttention(512);
  assert.deepEqual(program.map((d) => d.label),
    ['attention decode layer 0', 'attention split layer 0', 'attention combine layer 0']);
  const [decode, split, combine] = program;
  assert.equal(/** @type {any} */ (decode.pipeline).shader, 'attention_decode.wgsl');
  assert.equal(/** @type {any} */ (decode.pipeline).constants.D4, 32);
  assert.deepEqual(bound(decode), ['positions', 'rope', 'qkv', 'bias', 'k', 'v', 'att', 'params']);
  assert.equal(bound(combine)[2], 'att', 'both paths write the output the o projection reads');
  for (let end = 1; end <= CONTEXT; end++) {
    const runs = (/** @type {any} */ d) => decodeGrid(d, end).every((v) => v > 0);
    const whole = Math.ceil(end / 64) * 64 <= 512; // the step's end bucket (model.js END_STEP)
    assert.equal(runs(decode), whole, `end ${end}: attention_decode`);
    assert.equal(runs(split), !whole, `end ${end}: attention_split`);
    assert.equal(runs(combine), !whole, `end ${end}: attention_combine`);
    if (whole) assert.deepEqual(decodeGrid(decode, end), [16, 1, 1]);
  }
  // without an end (the whole context): the split path
  assert.ok(decodeGrid(decode).includes(0) && !decodeGrid(split).includes(0));
});

test('maxPositions 0 records no attention_decode, and the split path runs at every end', () => {
  const program = recordAttention(0);
  assert.deepEqual(program.map((d) => d.label), ['attention split layer 0', 'attention combine layer 0']);
  for (const end of [1, 64, 65, 4096]) assert.ok(program.every((d) => decodeGrid(d, end).every((v) => v > 0)));
});
