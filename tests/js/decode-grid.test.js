// model.js decodeGrid: a decode dispatch whose grid follows the step's end (split attention: one row of workgroups per
// split up to the token's) is encoded for the end rounded up to a bucket, so that a step encoded ahead serves the
// next positions; the grid must cover every split the token reads, whatever the end, and be made once per bucket.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { attentionSplitGrid, attentionSplitShape } from '../../app/engine/gpu/grids.js';
import { decodeGrid } from '../../app/engine/gpu/model.js';

const CAPACITY = 4096;
const shape = attentionSplitShape(128, 16, 2, { WG: 128, SPLIT: 16, GROUP: 1 }); // the 3B shape, the GPU tuning's

/** A decode dispatch as Model records it, its grid function as ops.js attend() gives. */
function splitDispatch() {
  /** @param {number} _T @param {number} [end] */
  const of = (_T, end) => attentionSplitGrid(16, Math.min(CAPACITY, end ?? CAPACITY), shape);
  return { label: 'attention split', pipeline: /** @type {any} */ (null), bindGroup: /** @type {any} */ (null),
    grid: of(1), byEnd: { of, grids: new Map() } };
}

test('the grid covers every split up to the token, and little past it', () => {
  const d = splitDispatch();
  for (let end = 1; end <= CAPACITY; end++) {
    const [x, y, z] = decodeGrid(d, end);
    const needed = Math.ceil(end / shape.SPLIT); // splits the token at position end - 1 reads
    assert.equal(x, 16);
    assert.equal(z, 1);
    assert.ok(y >= needed, `end ${end}: ${y} rows of workgroups, ${needed} splits read`);
    assert.ok(y <= needed + 64 / shape.SPLIT, `end ${end}: ${y} rows, more than a bucket past ${needed}`);
  }
});

test('one grid per bucket, reused; the whole context without an end; fixed dispatches unchanged', () => {
  const d = splitDispatch();
  const a = decodeGrid(d, 385);
  assert.equal(decodeGrid(d, 448), a, 'ends in one bucket share one array (no allocation per token)');
  assert.notEqual(decodeGrid(d, 449), a);
  assert.deepEqual(decodeGrid(d), [16, CAPACITY / shape.SPLIT, 1]);
  assert.ok(d.byEnd.grids.size <= 2);
  const fixed = { ...d, grid: [7, 1, 1], byEnd: null };
  assert.equal(decodeGrid(fixed, 100), fixed.grid);
});
