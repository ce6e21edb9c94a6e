// Workgroup memory for the prefill matmul's tiles: probe() asks for 32 KiB where the adapter offers it (tiles of 128
// rows by 128 tokens need that much; WebGPU's default is 16 KiB), and Pipelines refuses a matmul tuning whose tiles
// need more than the device got, saying what to do, instead of a validation error at the first dispatch.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { matmulTileBytes } from '../../app/engine/gpu/grids.js';
import { Pipelines, TUNING } from '../../app/engine/gpu/pipelines.js';
import { WORKGROUP_STORAGE_WANTED, probe } from '../../app/engine/gpu/probe.js';
import { smollm2Package } from './helpers/python.js';

/** A GPU whose one adapter offers `workgroupBytes` of workgroup memory and large buffers. @param {number | undefined} workgroupBytes */
function fakeGpu(workgroupBytes) {
  const limits = { maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 32, maxComputeWorkgroupStorageSize: workgroupBytes };
  const adapter = { info: { vendor: 'fake', architecture: '', device: '', description: '' }, features: new Set(), limits };
  return /** @type {any} */ ({ requestAdapter: async () => adapter });
}

test('probe asks for 32 KiB of workgroup memory where the adapter offers it, never more than it offers', async () => {
  const manifest = JSON.parse(readFileSync(join(await smollm2Package(), 'manifest.json'), 'utf8'));
  for (const [offered, asked] of [[49152, 32768], [32768, 32768], [16384, 16384], [undefined, 16384]]) {
    const r = await probe(fakeGpu(offered), manifest);
    assert.ok(r.ok, r.reason);
    assert.equal(r.limits?.maxComputeWorkgroupStorageSize, asked, `adapter offers ${offered}`);
  }
  assert.equal(WORKGROUP_STORAGE_WANTED, matmulTileBytes({ WX: 16, WY: 16, RV: 2, TV: 2 }));
});

test('a matmul tuning needing more workgroup memory than the device has is refused with what to do', () => {
  /** @param {number} bytes */
  const device = (bytes) => /** @type {any} */ ({
    limits: { maxComputeWorkgroupStorageSize: bytes },
    createComputePipeline: (/** @type {any} */ d) => ({ label: d.label }),
  });
  const large = { ...TUNING, matmulWide: { minRows: 4096, WX: 16, WY: 16, RV: 2, TV: 2 } };
  const modules = new Map([['matmul.wgsl', /** @type {any} */ ({})]]);
  const small = new Pipelines(device(16384), modules, /** @type {any} */ (large));
  assert.throws(() => small.matmul('q4', false, 8192), /needs 32768 bytes of workgroup memory and this device has 16384: request the device with probe\(\)'s limits/);
  assert.ok(small.matmul('q4', false, 1024).pipeline, 'rows under minRows take the default tile, which fits');
  assert.ok(new Pipelines(device(32768), modules, /** @type {any} */ (large)).matmul('q4', false, 8192).pipeline);
  // the engine's own tunings fit WebGPU's default, so every adapter runs them
  for (const t of [TUNING.matmul, TUNING.matmulWide, TUNING.matmulKq, TUNING.matmulKqWide]) {
    assert.ok(matmulTileBytes(/** @type {any} */ (t)) <= 16384, JSON.stringify(t));
  }
});
