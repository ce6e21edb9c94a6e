// Benchmark the engine's decode matvec kernels per weight storage (q4, q8: matvec.wgsl; q4k, q5k, q6k:
// matvec_kq.wgsl) under Node with Dawn (npm `webgpu`), beside the same-run DRAM read bound. Not a test.
//
// Usage (on the GPU machine, after `source .device/on-device.sh`):
//   node scripts/bench_matvec.mjs [--shapes 8192x8192,14336x4096] [--storages q4,q4k,q6k] [--json out.json]
//     [--tunings engine,32x4x2]  also (or instead) time each shape with these matvec tunings TXxTYxR[xUNROLL] in place
//                                of the engine's (its gpu / gpu_long choice by column count): to compare tunings by
//                                shape (UNROLL: matvec.wgsl only; matvec_kq.wgsl has no such override)
//     [--chain]  every dispatch writes the same y, so each waits for the one before (a barrier between them, as
//                between the matvecs of a decode step): time per matvec including its fill and drain, not the
//                throughput of overlapping ones
// Each (shape, storage) runs entry main with the pipeline and grid the engine picks (app/engine/gpu/pipelines.js
// Pipelines.matvec: its GPU tuning, gpu_long from long_min_cols inputs on) and bindings as ops.js makes them
// (weights.js kernelPlanes). Printed per line: microseconds per matvec, GB/s of the bytes it must move (every plane
// of the weight, x, y) and that as a fraction of the bound. Weights are random planes of the right sizes (speed does
// not depend on the values); dispatches rotate over enough copies of them to exceed 4x a 64 MiB L2 (an H100 has
// 50 MB), each writing its own y, so no weight byte comes from cache and no dispatch waits on another. The copies
// are views of one arena buffer made once for every shape (as the engine binds views of its shards).
// **Time one configuration per process** (one shape, storage and tuning; loop in the shell): on an H100 under Dawn
// (2026-12-07) whichever configuration ran first in a process ran at 35-45% of the read bound and every later one
// at 8-12%, whatever its shape or tuning, with fresh buffers per shape or one arena alike (cause not found; the
// engine's own profile, bench_engine.mjs --profile, does not show it). The script warns when it times several.
// Bound: scripts/stream_read.wgsl streaming 1 GiB, timed the same way in the same process (as bench_engine.mjs).
// Timing: (t(2n) - t(n)) / n, each t the best of 3 submits of that many dispatches (cancels the submit cost).

import { readFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { create, globals } from 'webgpu';
import { perOpSeconds, storageBuffer, streamReadBandwidth, timedDispatches } from './bench_node.mjs';

Object.assign(globalThis, globals);
const { Pipelines, TUNING, CPU_TUNING } = await import('../app/engine/gpu/pipelines.js');
const { PARAMS, packParams } = await import('../app/engine/gpu/params.js');
const { PLANES } = await import('../app/engine/gpu/package.js');
const { kernelPlanes } = await import('../app/engine/gpu/weights.js');
const { shaderSource } = await import('../app/engine/gpu/kernels.js');

const { values: args } = parseArgs({
  options: {
    shapes: { type: 'string', default: '8192x8192,14336x4096' },
    storages: { type: 'string', default: 'q4,q4k,q6k' },
    json: { type: 'string' },
    tunings: { type: 'string', default: 'engine' },
    cpu: { type: 'boolean', default: false }, // CPU adapters' tuning (for a trial run on lavapipe / SwiftShader)
    chain: { type: 'boolean', default: false },
  },
});

const L2_BYTES = 64 << 20;
const BATCH_BYTES = 1 << 30; // about this much traffic per timed batch
const SHADER_DIR = new URL('../webgpu_shaders/', import.meta.url);

/**
 * Random planes of a [rows, cols] weight in `storage` (docs/FORMAT.md sizes), f16 scales small and normal.
 * @param {string} storage @param {number} rows @param {number} cols @returns {Uint32Array[]} PLANES[storage] order
 */
function randomPlanes(storage, rows, cols) {
  const n = rows * cols;
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
  const fill = (/** @type {number} */ words, /** @type {() => number} */ f) => Uint32Array.from({ length: words }, f);
  const f16 = 0x1c00; // 2^-8
  const qweight = fill(storage === 'q8' ? n / 4 : n / 8, rand);
  if (storage === 'q4' || storage === 'q8') {
    return [qweight, fill(storage === 'q4' ? n / 32 : Math.ceil(n / 64), () => f16 | (f16 << 16))];
  }
  const supers = fill((n / 256) * 5, () => (rand() & 0x3f3f3f3f) | 0x01010101);
  for (let i = 0; i < supers.length; i += 5) supers[i] = f16 | (storage === 'q6k' ? 0 : f16 << 16);
  if (storage === 'q4k') return [qweight, supers];
  return [qweight, fill(storage === 'q5k' ? n / 32 : n / 16, rand), supers];
}

const gpu = create([]);
const adapter = await gpu.requestAdapter(args.cpu ? { forceFallbackAdapter: true } : { powerPreference: 'high-performance' });
if (!adapter) throw new Error('no WebGPU adapter');
const device = await adapter.requestDevice({
  requiredLimits: {
    maxStorageBufferBindingSize: Math.min(adapter.limits.maxStorageBufferBindingSize, 1 << 30),
    maxBufferSize: Math.min(adapter.limits.maxBufferSize, 1 << 30),
  },
});
const ai = /** @type {any} */ (adapter).info ?? {};
const info = { vendor: ai.vendor ?? '', architecture: ai.architecture ?? '', device: ai.device ?? '', description: ai.description ?? '' };
console.log(`adapter: ${JSON.stringify(info)}`);
const modules = new Map();
for (const name of ['matvec.wgsl', 'matvec_kq.wgsl']) {
  const code = await shaderSource(name, (file) => readFile(new URL(file, SHADER_DIR), 'utf8'));  // with its includes
  modules.set(name, device.createShaderModule({ label: name, code }));
}
const base = args.cpu ? CPU_TUNING : TUNING;
/**
 * The tuning named by one --tunings entry: 'engine' (the engine's), or TXxTYxR for every matvec shape.
 * @param {string} name
 */
function tuningNamed(name) {
  if (name === 'engine') return base;
  const [TX, TY, R, UNROLL = 1] = name.split('x').map(Number);
  if (![TX, TY, R, UNROLL].every((v) => Number.isInteger(v) && v > 0)) throw new Error(`--tunings: ${name} is not TXxTYxR[xUNROLL]`);
  const t = UNROLL > 1 ? { TX, TY, R, UNROLL } : { TX, TY, R };
  const kq = { TX, TY, R };
  return { ...base, matvec: t, matvecLong: { minCols: Infinity, ...t }, matvecKq: kq, matvecKqLong: { minCols: Infinity, ...kq } };
}
// one Pipelines (and its cache of compiled pipelines) per tuning, shared by every shape and storage
const pipelinesByTuning = new Map(args.tunings.split(',').map((name) => [name,
  new Pipelines(device, modules, /** @type {any} */ (tuningNamed(name)))]));
const shapes = args.shapes.split(',').map((shape) => shape.split('x').map(Number));
const storages = args.storages.split(',');
const configurations = shapes.length * storages.length * pipelinesByTuning.size;
if (configurations > 1) {
  console.warn(`warning: ${configurations} configurations in one process; on an H100 only the first was timed ` +
    'right (see the header): run one --shapes, --storages and --tunings entry per process for figures to keep');
}
const stream = await streamReadBandwidth(device);
console.log(`streaming read of 1 GiB: ${(stream / 1e9).toFixed(0)} GB/s (the bound)`);
const result = /** @type {Record<string, any>} */ ({ adapter: info.description || info.device, stream_read_GBps: stream / 1e9, matvec: [] });

const buffer = (/** @type {ArrayBufferView | number} */ data) => storageBuffer(device, data);

const ALIGN = 256; // minStorageBufferOffsetAlignment's largest allowed value
const alignUp = (/** @type {number} */ n) => Math.ceil(n / ALIGN) * ALIGN;
/** Bytes of one copy of a weight's planes laid out in the arena, each plane aligned. @param {Uint32Array[]} planes */
const copyBytes = (planes) => planes.reduce((s, p) => s + alignUp(p.byteLength), 0);
/** Copies of a weight of `bytes` that together exceed 4x the L2. @param {number} bytes */
const copiesOf = (bytes) => Math.max(2, Math.ceil((4 * L2_BYTES) / bytes));
// every (shape, storage)'s copies fit in the arena: at most 4 x L2 + one copy of the largest weight
let arenaBytes = 0;
for (const [rows, cols] of shapes) for (const storage of storages) {
  const one = copyBytes(randomPlanes(storage, rows, cols));
  arenaBytes = Math.max(arenaBytes, copiesOf(one) * one);
}
if (arenaBytes > device.limits.maxBufferSize) throw new Error(`--shapes: the weights' copies need ${arenaBytes} bytes, over this device's maxBufferSize ${device.limits.maxBufferSize}; take smaller shapes`);
const arena = buffer(arenaBytes);

for (const [rows, cols] of shapes) {
  for (const storage of storages) for (const [tuningName, pipelines] of pipelinesByTuning) {
    const planes = randomPlanes(storage, rows, cols);
    const weightBytes = planes.reduce((s, p) => s + p.byteLength, 0);
    const bytes = weightBytes + 4 * cols + 4 * rows;
    const copies = copiesOf(copyBytes(planes));
    /** @type {GPUBufferBinding[][]} per copy, per plane: its view of the arena */
    const weights = [];
    for (let c = 0, offset = 0; c < copies; c++) {
      weights.push(planes.map((p) => {
        device.queue.writeBuffer(arena, offset, /** @type {any} */ (p));
        const view = { buffer: arena, offset, size: p.byteLength };
        offset += alignUp(p.byteLength);
        return view;
      }));
    }
    const x = buffer(Float32Array.from({ length: cols }, (_, i) => Math.sin(i)));
    const n = Math.min(400, Math.max(8, Math.floor(BATCH_BYTES / bytes)));
    const ys = args.chain ? Array(2 * n).fill(buffer(4 * rows)) : Array.from({ length: 2 * n }, () => buffer(4 * rows));
    const k = pipelines.matvec(/** @type {any} */ (storage), 'main', false, cols);
    const shader = storage === 'q4' || storage === 'q8' ? 'matvec.wgsl' : 'matvec_kq.wgsl';
    const pbuf = device.createBuffer({ size: PARAMS[shader].size, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(pbuf, 0, packParams(PARAMS[shader], { rows, cols, row_offset: 0, eps: 0 }));
    const groups = ys.map((y, i) => device.createBindGroup({
      layout: k.pipeline.getBindGroupLayout(0),
      entries: [...kernelPlanes(/** @type {any} */ (storage), weights[i % copies]), { buffer: x }, { buffer: y },
        { buffer: pbuf }].map((resource, binding) => ({ binding, resource })),
    }));
    const grid = /** @type {[number, number, number]} */ (k.grid(rows));
    const timed = (/** @type {number} */ reps) => timedDispatches(device, k.pipeline, groups, grid, reps);
    await timed(n); // warm up
    const s = await perOpSeconds(timed, n);
    const fig = { storage, tuning: tuningName, chain: args.chain, rows, cols, bytes, us: s * 1e6, GBps: bytes / s / 1e9, of_read_bound: bytes / s / stream };
    result.matvec.push(fig);
    console.log(`${shader} ${storage} ${rows}x${cols} tuning ${tuningName} grid ${k.grid(rows).join('x')} (${(bytes / 2 ** 20).toFixed(1)} MiB, planes ${PLANES[/** @type {keyof typeof PLANES} */ (storage)].join('+')}): ` +
      `${fig.us.toFixed(1)} us, ${fig.GBps.toFixed(0)} GB/s, ${(100 * fig.of_read_bound).toFixed(1)}% of the read bound`);
    if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 1));
    for (const y of new Set(ys)) y.destroy();
    x.destroy();
    pbuf.destroy();
  }
}
console.log(JSON.stringify(result));
process.exit(0);
