// bench_node.mjs: what the Node benchmarks share: fetch() for file: URLs, seconds per operation from two batch sizes,
// the DRAM read bound (stream_read.wgsl) and the f32 multiply-add bound (fma_peak.wgsl) that the GPU benchmarks divide
// by, and reading results back to compare them.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const STREAM_WGSL = new URL('stream_read.wgsl', import.meta.url);
const FMA_WGSL = new URL('fma_peak.wgsl', import.meta.url);

/** fetch() for file: URLs (Node's fetch only speaks http). @param {string | URL | Request} url */
export async function fileFetch(url) {
  const href = typeof url === 'string' ? url : url instanceof URL ? url.href : url.url;
  return new Response(await readFile(fileURLToPath(href)));
}

/**
 * Seconds per operation: (t(2n) - t(n)) / n, each t the best of `trials` submits of that many operations. The minima
 * are taken before the difference: the minimum of differences let one slow t(n) give a tiny or negative time (seen
 * 2026-12-06: -479 and 5,712 GB/s for a 1 GiB read on an H100 whose DRAM streams 2.9-3.0 TB/s).
 * @param {(reps: number) => Promise<number>} timed  seconds for one submit of reps operations
 * @param {number} n @param {number} [trials]
 */
export async function perOpSeconds(timed, n, trials = 3) {
  let t1 = Infinity;
  let t2 = Infinity;
  for (let trial = 0; trial < trials; trial++) {
    t1 = Math.min(t1, await timed(n));
    t2 = Math.min(t2, await timed(2 * n));
  }
  return t2 > t1 ? (t2 - t1) / n : NaN; // NaN: the work was lost in the noise (callers that bound must refuse it)
}

/**
 * One submit of `count` dispatches of `pipeline`, the i-th with bind group groups[i % groups.length]; seconds to
 * completion.
 * @param {GPUDevice} device @param {GPUComputePipeline} pipeline @param {GPUBindGroup[]} groups
 * @param {[number, number, number]} grid @param {number} count
 */
export async function timedDispatches(device, pipeline, groups, grid, count) {
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline);
  for (let i = 0; i < count; i++) {
    pass.setBindGroup(0, groups[i % groups.length]);
    pass.dispatchWorkgroups(...grid);
  }
  pass.end();
  const t = performance.now();
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t) / 1000;
}

/**
 * A storage buffer (also a copy source and destination) of `data`'s bytes, or of `data` bytes zeroed, rounded up to
 * 16 bytes.
 * @param {GPUDevice} device @param {ArrayBufferView | number} data @returns {GPUBuffer}
 */
export function storageBuffer(device, data) {
  const size = typeof data === 'number' ? data : data.byteLength;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const b = device.createBuffer({ size: Math.max(16, Math.ceil(size / 16) * 16), usage });
  if (typeof data !== 'number') device.queue.writeBuffer(b, 0, /** @type {any} */ (data));
  return b;
}

/**
 * DRAM read bandwidth: scripts/stream_read.wgsl over `total` bytes (default 1 GiB, 20x an H100's L2) in bindings of at
 * most the device's maxStorageBufferBindingSize, one dispatch per binding, all in one pass.
 * @param {GPUDevice} device @param {number} [total] @returns {Promise<number>} bytes/s read
 */
export async function streamReadBandwidth(device, total = 1 << 30) {
  const chunk = Math.min(total, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) & ~0xffff;
  const n = Math.ceil(total / chunk);
  const buffers = Array.from({ length: n }, () => device.createBuffer({ size: chunk, usage: GPUBufferUsage.STORAGE }));
  const sink = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE });
  const pipeline = device.createComputePipeline({
    layout: 'auto',
    compute: { module: device.createShaderModule({ code: await readFile(STREAM_WGSL, 'utf8') }), entryPoint: 'main' },
  });
  const groups = buffers.map((buffer) => device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer } }, { binding: 1, resource: { buffer: sink } }],
  }));
  const x = Math.min(8192, device.limits.maxComputeWorkgroupsPerDimension);
  const grid = /** @type {[number, number, number]} */ ([x, 1, 1]);
  const timed = (/** @type {number} */ reps) => timedDispatches(device, pipeline, groups, grid, reps * n);
  await timed(1); // warm up (and first touch of the pages)
  const best = await perOpSeconds(timed, 4);
  if (!(best > 0)) throw new Error('the streaming read could not be timed (t(8) <= t(4)): run again');
  for (const b of buffers) b.destroy();
  sink.destroy();
  return (n * chunk) / best;
}

/**
 * The f32 multiply-add rate a WGSL kernel reaches here: scripts/fma_peak.wgsl (32 independent FMA chains per
 * invocation, in registers) over 2,048 workgroups of 256 invocations (16 per SM of a 132-SM H100), ITERS steps each.
 * The compute bound of the prefill matmuls, as streamReadBandwidth is the memory bound of decode.
 * @param {GPUDevice} device @returns {Promise<number>} flop/s (2 per multiply-add)
 */
export async function fmaPeak(device) {
  const WG = 256;
  const ITERS = 4096;
  const groups = 2048;
  const sink = device.createBuffer({ size: 4096 * 16, usage: GPUBufferUsage.STORAGE });
  const coef = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(coef, 0, new Float32Array([1 - 2 ** -20, 2 ** -12, 0, 0]));
  const pipeline = device.createComputePipeline({
    layout: 'auto',
    compute: { module: device.createShaderModule({ code: await readFile(FMA_WGSL, 'utf8') }), entryPoint: 'main',
      constants: { WG, ITERS } },
  });
  const group = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer: sink } }, { binding: 1, resource: { buffer: coef } }],
  });
  const timed = (/** @type {number} */ reps) => timedDispatches(device, pipeline, [group], [groups, 1, 1], reps);
  await timed(1);
  const best = await perOpSeconds(timed, 4);
  sink.destroy();
  coef.destroy();
  if (!(best > 0)) throw new Error('the multiply-add peak could not be timed (t(8) <= t(4)): run again');
  return (2 * 32 * ITERS * WG * groups) / best;
}

/**
 * A buffer's bytes as f32s, read back after the work submitted so far.
 * @param {GPUDevice} device @param {GPUBuffer} b @returns {Promise<Float32Array>}
 */
export async function readFloats(device, b) {
  const r = device.createBuffer({ size: b.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(b, 0, r, 0, b.size);
  device.queue.submit([enc.finish()]);
  await r.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(r.getMappedRange().slice(0));
  // unmapped before it is destroyed: bench_matmul_i8.mjs destroyed its read-back still mapped when its processes
  // aborted inside Dawn on an H100 (docs/PERFORMANCE.md); unmapping first did not stop the aborts, but is the API's order
  r.unmap();
  r.destroy();
  return out;
}

/**
 * How far b is from a, as max |a - b| and that over max |a| (the int8 route's rounding error, say).
 * @param {Float32Array} a  the reference @param {Float32Array} b
 */
export function relativeError(a, b) {
  let maxAbs = 0;
  let maxErr = 0;
  for (let i = 0; i < a.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i]));
    maxErr = Math.max(maxErr, Math.abs(a[i] - b[i]));
  }
  return { maxAbs, maxErr, rel: maxErr / maxAbs };
}
