// What int8 activations would give the prefill matmul on this GPU: the engine's f32 matmul (matmul.wgsl, its tuning
// for the shape, as pipelines.js picks it) against scripts/matmul_q4_i8.wgsl (X rounded to int8 per 32 columns,
// integer dot products by dot4I8Packed) on the same random q4 weight and X, under Node with Dawn (npm `webgpu`). Not a
// test, and not the engine: the int8 route changes the engine's arithmetic (issue 10; the owner's choice in the
// stop-21 note), so this measures it before anyone builds it.
//
// Usage (on the GPU machine, after `source .device/on-device.sh`), one shape and kernel per process as for
// bench_matvec.mjs (whichever configuration runs first in a process is the one to trust on an H100 under Dawn):
//   node scripts/bench_matmul_i8.mjs [--shape 11008x2048] [--tokens 256] [--kernel f32|i8|quantize]
//     [--tuning '{"WX":16,"WY":8,"RV":1,"TV":1,"GS":2}'] [--json out.json] [--cpu (the fallback adapter: a trial run)]
// The 3B shape's gate and down and the 1.5B's gate, each kernel and two int8 tiles:
//   for s in 11008x2048 2048x11008 8960x1536; do for k in f32 quantize i8; do
//     node scripts/bench_matmul_i8.mjs --shape $s --kernel $k; done
//     node scripts/bench_matmul_i8.mjs --shape $s --kernel i8 --tuning '{"WX":8,"WY":8,"RV":2,"TV":2,"GS":2}'; done
// Both kernels run once first and their outputs are compared (the int8 rounding's error, relative to the largest
// |Y|); then the chosen kernel is timed alone: (t(2n) - t(n)) / n over submits of n dispatches. Printed: ms per
// dispatch and TFLOP/s counting 2 T rows cols. `--kernel quantize` times the rounding of X alone.
// Caveat: the int8 kernel reached 36-38 TFLOP/s here on an H100 and 22-30 in the engine's pass (f32: 14.7 here,
// 13-20 there), likely because the one weight repeated here (11-22 MB) stays in the 50 MB L2 while the engine streams
// a new one per matmul. `bench_engine.mjs --prefill-i8` gives the engine's figure (docs/PERFORMANCE.md).

import { readFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { create, globals } from 'webgpu';
import { perOpSeconds, readFloats, relativeError, storageBuffer, timedDispatches } from './bench_node.mjs';

Object.assign(globalThis, globals);
const { Pipelines, TUNING } = await import('../app/engine/gpu/pipelines.js');
const { PARAMS, packParams } = await import('../app/engine/gpu/params.js');
const { shaderSource } = await import('../app/engine/gpu/kernels.js');
const { matmulGrid } = await import('../app/engine/gpu/grids.js');

const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: '11008x2048' },
    tokens: { type: 'string', default: '256' },
    kernel: { type: 'string', default: 'i8' },
    tuning: { type: 'string', default: '{"WX":16,"WY":8,"RV":1,"TV":1,"GS":2}' },
    json: { type: 'string' },
    cpu: { type: 'boolean', default: false }, // the fallback (CPU) adapter: a trial run where no GPU is
  },
});
const [rows, cols] = args.shape.split('x').map(Number);
const T = Number(args.tokens);
if (!(rows > 0 && cols > 0 && cols % 32 === 0 && T > 0)) throw new Error('--shape ROWSxCOLS with COLS a multiple of 32, --tokens > 0');
if (!['f32', 'i8', 'quantize'].includes(args.kernel)) throw new Error(`--kernel ${args.kernel}: f32, i8 or quantize`);
const i8Tuning = JSON.parse(args.tuning);

const gpu = create([]);
const adapter = await gpu.requestAdapter(args.cpu ? { forceFallbackAdapter: true } : { powerPreference: 'high-performance' });
if (!adapter) throw new Error('no WebGPU adapter');
const device = await adapter.requestDevice();
const ai = /** @type {any} */ (adapter).info ?? {};
console.log(`adapter: ${ai.vendor ?? ''} ${ai.device ?? ''} ${ai.description ?? ''}`);

const buffer = (/** @type {ArrayBufferView | number} */ data) => storageBuffer(device, data);
/** @param {ArrayBuffer} data */
function uniform(data) {
  const b = device.createBuffer({ size: Math.ceil(data.byteLength / 16) * 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(b, 0, /** @type {any} */ (data));
  return b;
}
// random q4 planes (docs/FORMAT.md): codes uniform, (scale, min) = (2^-4, -2^-1) so weights lie in -0.5 .. 0.44;
// X a deterministic wave
let seed = 12345;
const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0);
const qweight = buffer(Uint32Array.from({ length: (rows * cols) / 8 }, rand));
const scales = buffer(new Uint32Array((rows * cols) / 32).fill(0x2c00 | (0xb800 << 16)));
const x = buffer(Float32Array.from({ length: T * cols }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7))));
const yF32 = buffer(4 * T * rows);
const yI8 = buffer(4 * T * rows);
const xq = buffer(T * cols);
const xs = buffer((8 * T * cols) / 32);

// compiler messages and validation errors of everything below, printed whole (Dawn's were cut off in an earlier run)
device.pushErrorScope('validation');
// the engine's f32 matmul for this shape
const matmulCode = await shaderSource('matmul.wgsl', (f) => readFile(new URL(`../webgpu_shaders/${f}`, import.meta.url), 'utf8'));
const pipelines = new Pipelines(device, new Map([['matmul.wgsl', device.createShaderModule({ code: matmulCode })]]), /** @type {any} */ (TUNING));
const f32 = pipelines.matmul('q4', false, rows);
const params = uniform(packParams(PARAMS['matmul.wgsl'], { rows, cols, row_offset: 0, tokens: T, y_stride: rows }));
const f32Group = device.createBindGroup({ layout: f32.pipeline.getBindGroupLayout(0),
  entries: [qweight, scales, x, yF32, params].map((b, binding) => ({ binding, resource: { buffer: b } })) });
const f32Grid = /** @type {[number, number, number]} */ (f32.grid(rows, T));

// the int8 kernels
const i8Module = device.createShaderModule({ code: await readFile(new URL('matmul_q4_i8.wgsl', import.meta.url), 'utf8') });
for (const m of (await i8Module.getCompilationInfo()).messages) console.log(`matmul_q4_i8.wgsl:${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
const quantize = device.createComputePipeline({ layout: 'auto', compute: { module: i8Module, entryPoint: 'quantize' } });
const i8 = device.createComputePipeline({ layout: 'auto', compute: { module: i8Module, entryPoint: 'main', constants: i8Tuning } });
const quantizeGroup = device.createBindGroup({ layout: quantize.getBindGroupLayout(0),
  entries: [x, xq, xs, params].map((b, binding) => ({ binding, resource: { buffer: b } })) });
const i8Group = device.createBindGroup({ layout: i8.getBindGroupLayout(0),
  entries: [qweight, scales, xq, xs, yI8, params].map((b, binding) => ({ binding, resource: { buffer: b } })) });
const quantizeGrid = /** @type {[number, number, number]} */ ([Math.ceil((T * cols) / 32 / 64), 1, 1]);
// the same tiles as matmul.wgsl (4 RV WX rows by 4 TV WY tokens), so the same grid
const i8Grid = /** @type {[number, number, number]} */ (matmulGrid(rows, T, i8Tuning));

// one run of each, outputs compared
await timedDispatches(device, f32.pipeline, [f32Group], f32Grid, 1);
await timedDispatches(device, quantize, [quantizeGroup], quantizeGrid, 1);
await timedDispatches(device, i8, [i8Group], i8Grid, 1);
const error = await device.popErrorScope();
if (error) throw new Error(`WebGPU: ${error.message}`);
const { maxAbs, maxErr, rel: relError } = relativeError(await readFloats(device, yF32), await readFloats(device, yI8));
console.log(`int8 against f32: max |dY| ${maxErr.toPrecision(3)} = ${relError.toExponential(2)} of max |Y| ${maxAbs.toPrecision(3)}`);
if (!(relError < 0.05)) throw new Error('the int8 kernel does not compute the same product (relative error >= 5%)');

const pick = { f32: [f32.pipeline, f32Group, f32Grid], i8: [i8, i8Group, i8Grid], quantize: [quantize, quantizeGroup, quantizeGrid] };
const [pipeline, group, grid] = /** @type {[GPUComputePipeline, GPUBindGroup, [number, number, number]]} */ (pick[/** @type {'f32'} */ (args.kernel)]);
// each submit's time printed as it comes: a process that aborts later (as most f32 and i8 processes did on the H100,
// docs/PERFORMANCE.md) still leaves pairs t(n), t(2n) to read a time from
const timed = async (/** @type {number} */ reps) => {
  const seconds = await timedDispatches(device, pipeline, [group], grid, reps);
  console.log(`  ${reps} dispatches in one submit: ${(seconds * 1e3).toFixed(3)} ms`);
  return seconds;
};
await timed(4); // warm up
const n = 20;
const s = await perOpSeconds(timed, n);
const flops = 2 * T * rows * cols;
const tuning = args.kernel === 'f32' ? (rows >= pipelines.tuning.matmulWide.minRows ? pipelines.tuning.matmulWide : pipelines.tuning.matmul) : i8Tuning;
const result = { adapter: ai.description || ai.device, kernel: args.kernel, rows, cols, tokens: T, tuning, grid, ms: s * 1e3,
  TFLOPs: flops / s / 1e12, rel_error: relError };
console.log(`${args.kernel} ${rows}x${cols} T=${T} tuning ${JSON.stringify(tuning)} grid ${grid.join('x')}: ${(s * 1e3).toFixed(3)} ms` +
  (args.kernel === 'quantize' ? '' : `, ${(flops / s / 1e12).toFixed(1)} TFLOP/s`));
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 1));
process.exit(0);
