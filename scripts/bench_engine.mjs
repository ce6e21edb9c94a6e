// Benchmark the JS engine (app/engine/gpu) under Node with Dawn (npm `webgpu`) on a real GPU: decode and prefill
// tokens/s beside the same-run memory-bandwidth bound.
//
// Usage (on the GPU machine, after `source .device/on-device.sh`):
//   node scripts/bench_engine.mjs --package build/models/smollm2 [--decode 128] [--prefill 256] [--json out.json]
//     [--profile]   also: where a decode step's time goes (round trips, GPU time, GPU time per kernel family and
//                   per projection, the fixed cost of an empty dispatch)
//     [--prefill-profile]  also: where a prefill pass's time goes (GPU time of the pass, and of each kernel family
//                   and matmul projection repeated alone, with its TFLOP/s and that as a fraction of the f32
//                   multiply-add peak of scripts/fma_peak.wgsl timed in the same process), for a pass of
//                   min(--prefill, passTokens)
//     [--prefill-repeats N]  time the prefill N times (after the warm-up) and report the median (all are listed)
//     [--pass-tokens N]  prompt tokens per prefill pass (loadModel's passTokens; default the engine's)
//     [--tuning JSON]  entries laid over pipelines.js TUNING (matvec, matvecLong, matmul, matmulWide), e.g.
//                      '{"matvec":{"TX":16,"TY":4,"R":4}}', to compare kernel tunings in the engine
//     [--context N]  KV positions to allocate (default prefill + decode + 8): the memory figures below follow it
//     [--prefill-i8 JSON]  with --prefill-profile, also the int8 route's matmuls in the same pass (profileI8; a
//                   tuning of scripts/matmul_q4_i8.wgsl, e.g. '{"WX":16,"WY":8,"RV":2,"TV":1,"GS":2}'): measurement
//                   only, the engine does not use it
//     [--dawn-features LIST]  Dawn toggles to enable (create()'s `enable-dawn-features=LIST`, comma-separated), e.g.
//                   disable_robustness,disable_workgroup_init: to see what the browser's safety code costs a kernel
//                   (measurement only: a page cannot turn them off)
//     [--mask]      also: decode again from the same position with a grammar's token mask (here one that allows
//                   every token, so the ids must not change) uploaded every token, then once more without (the
//                   same-run baseline on both sides): the per-token cost of constrained decoding's GPU part
// Decode also prints its first greedy ids and an FNV-1a hash of all of them: two engine versions on the same package
// must print the same (random weights have no reference to check against).
// Bound: one decode token must read every weight byte once (the embedding only as the tied output head, one row for
// the lookup) plus the KV cache written so far; bound tokens/s = DRAM read bandwidth / those bytes, where the read
// bandwidth is a WGSL kernel streaming through 1 GiB (20x an H100's 50 MB L2, so no repeat is served from cache),
// timed in the same process. Dawn's copyBufferToBuffer (256 MiB, read + write bytes) is printed beside it: it moved
// about 850 GB/s on an H100 whose DRAM streams about 3 TB/s, so it is no bound (it was ours until 2026-12-06).

import { readFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { create, globals } from 'webgpu';
import { fileFetch, fmaPeak, perOpSeconds, readFloats, relativeError, storageBuffer, streamReadBandwidth } from './bench_node.mjs';

Object.assign(globalThis, globals);
const { loadModel, decodeGrid } = await import('../app/engine/gpu/model.js');
const { probe } = await import('../app/engine/gpu/probe.js');
const { TUNING } = await import('../app/engine/gpu/pipelines.js');
const { matmulGrid } = await import('../app/engine/gpu/grids.js');

const { values: args } = parseArgs({
  options: {
    package: { type: 'string' },
    decode: { type: 'string', default: '128' },
    prefill: { type: 'string', default: '256' },
    json: { type: 'string' },
    profile: { type: 'boolean', default: false },
    'prefill-profile': { type: 'boolean', default: false },
    'pass-tokens': { type: 'string' },
    'prefill-repeats': { type: 'string', default: '1' },
    tuning: { type: 'string' },
    mask: { type: 'boolean', default: false },
    context: { type: 'string' },
    'prefill-i8': { type: 'string' },
    'dawn-features': { type: 'string' },
  },
});
if (!args.package) throw new Error('--package DIR is required');


/** @param {GPUDevice} device @returns {Promise<number>} bytes/s of read + write traffic */
async function copyBandwidth(device) {
  const size = 256 << 20;
  const usage = GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const src = device.createBuffer({ size, usage });
  const dst = device.createBuffer({ size, usage });
  /** @param {number} n */
  const timed = async (n) => {
    const enc = device.createCommandEncoder();
    for (let i = 0; i < n; i++) enc.copyBufferToBuffer(src, 0, dst, 0, size);
    const t = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return (performance.now() - t) / 1000;
  };
  await timed(2); // warm up
  const best = await perOpSeconds(timed, 8); // the difference cancels the submit and wake-up cost
  if (!(best > 0)) throw new Error('the copy could not be timed (t(16) <= t(8)): run again');
  src.destroy();
  dst.destroy();
  return (2 * size) / best;
}

/** Bytes of one manifest chunk: the lengths of its planes (docs/FORMAT.md). @param {any} chunk */
function chunkBytes(chunk) {
  let n = 0;
  for (const [, len] of Object.values(/** @type {Record<string, [number, number]>} */ (chunk.planes))) n += len;
  return n;
}

/** Bytes one decode token reads at position pos. @param {any} manifest @param {number} pos */
function bytesPerToken(manifest, pos) {
  const c = manifest.config;
  let bytes = 0;
  for (const [name, t] of Object.entries(manifest.tensors)) {
    /** @type {any} */ const tensor = t;
    let tensorBytes = 0;
    for (const chunk of tensor.chunks) tensorBytes += chunkBytes(chunk);
    if (name === 'token_embd.weight') {
      const rowBytes = tensorBytes / tensor.shape[0];
      bytes += rowBytes + (c.tie_word_embeddings ? tensorBytes : 0); // lookup of one row (+ the tied head)
    } else {
      bytes += tensorBytes;
    }
  }
  return bytes + 2 * c.num_layers * pos * c.num_kv_heads * c.head_dim * 4; // K and V read, f32
}

/**
 * One compute pass of `reps` runs of dispatches p, each with its fixed grid.
 * @param {GPUCommandEncoder} enc
 * @param {{pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: number[]}[]} p
 * @param {number} [reps]
 */
function encodeInto(enc, p, reps = 1) {
  const pass = enc.beginComputePass();
  for (let r = 0; r < reps; r++) {
    for (const d of p) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
    }
  }
  pass.end();
}

/**
 * Where a decode step's time goes (--profile): host round trips without work, the recorded program with one submit
 * and read-back per step (as decode runs), the same program repeated in one submit (GPU time alone), and each kernel
 * family alone. Kernels run on whatever the buffers hold (results are not checked), at the KV length the last
 * forward left (`pos` positions).
 * @param {any} model @param {number} pos
 */
async function profileDecode(model, pos) {
  const { device, state: s } = model;
  // the step as the engine encodes it at this position (split attention's grid follows the step's end)
  /** @type {{label: string, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: number[]}[]} */
  const prog = model.decodeProgram.map((/** @type {any} */ d) => ({ ...d, grid: decodeGrid(d, pos + 1) }));
  // kernel families: matvec swiglu, the head's matvec (the LM head), other matvecs, embed, rope, attention (split
  // and combine apart), argmax
  const kind = (/** @type {string} */ label) => label.startsWith('matvec swiglu') ? 'swiglu' :
    label.startsWith('matvec token_embd') || label.startsWith('matvec output') ? 'matvec_head' :
      label.startsWith('attention ') ? label.split(' ').slice(0, 2).join('_') : label.split(' ')[0];
  /** ms per step of: submit (p x reps) + read back 8 bytes, best of 3 batches of `steps`. @param {typeof prog} p */
  const step = async (p, reps = 1, steps = 30) => {
    let best = Infinity;
    for (let trial = 0; trial < 3; trial++) {
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) {
        const enc = device.createCommandEncoder();
        if (p.length) encodeInto(enc, p, reps);
        enc.copyBufferToBuffer(s.token, 0, s.tokenRead, 0, 8);
        device.queue.submit([enc.finish()]);
        await s.tokenRead.mapAsync(GPUMapMode.READ);
        s.tokenRead.unmap();
      }
      best = Math.min(best, (performance.now() - t0) / steps);
    }
    return best;
  };
  /** GPU ms per run of p: (t(2k) - t(k)) / k with k runs in one submit. @param {typeof prog} p */
  const gpuMs = async (p, k = 10) => ((await step(p, 2 * k, 5)) - (await step(p, k, 5))) / k;
  const out = /** @type {Record<string, any>} */ ({ dispatches: prog.length, kv_length: pos });
  await step(prog, 1, 5); // warm up
  out.roundtrip_empty_ms = await step([]);
  out.ows_empty_ms = await (async () => {
    let best = Infinity;
    for (let trial = 0; trial < 3; trial++) {
      const t0 = performance.now();
      for (let i = 0; i < 30; i++) {
        device.queue.submit([device.createCommandEncoder().finish()]);
        await device.queue.onSubmittedWorkDone();
      }
      best = Math.min(best, (performance.now() - t0) / 30);
    }
    return best;
  })();
  out.encode_only_ms = (() => {
    const t0 = performance.now();
    for (let i = 0; i < 30; i++) {
      const enc = device.createCommandEncoder();
      encodeInto(enc, prog, 1);
      enc.finish();
    }
    return (performance.now() - t0) / 30;
  })();
  out.step_ms = await step(prog);
  out.gpu_ms = await gpuMs(prog);
  out.half_layers_gpu_ms = await gpuMs(prog.slice(0, Math.floor(prog.length / 2)));
  const kinds = [...new Set(prog.map((d) => kind(d.label)))];
  out.by_kind = {};
  for (const k of kinds) {
    const p = prog.filter((d) => kind(d.label) === k);
    out.by_kind[k] = { dispatches: p.length, gpu_ms: await gpuMs(p) };
  }
  // each projection alone (repeated in one pass, as it runs in the step: a barrier before every dispatch), with the
  // weight bytes it reads: GB/s per dispatch including its fixed cost
  out.by_role = {};
  for (const r of [...new Set(prog.map((d) => role(d.label)))].filter(Boolean)) {
    const p = prog.filter((d) => role(d.label) === r);
    const ms = await gpuMs(p);
    const bytes = p.reduce((n, d) => n + labelBytes(model.manifest, d.label), 0);
    out.by_role[r] = { dispatches: p.length, gpu_ms: ms, us_per_dispatch: (1000 * ms) / p.length, GBps: bytes / ms / 1e6 };
  }
  out.empty_dispatch_us = await emptyDispatchUs(device, gpuMs);
  console.log(`profile: ${JSON.stringify(out)}`);
  return out;
}

/** The projection a matvec dispatch runs, by its label (ops.js), or '' for other kernels. @param {string} label */
function role(label) {
  const m = /^matvec (?:swiglu )?\S*?(attn_qkv|attn_q|attn_k|attn_v|attn_output|ffn_down|ffn_gate|ffn_up|token_embd|output)\b/.exec(label);
  if (!m) return '';
  // the unfused path (gate and up as two matvecs) counts as gate_up too
  return { attn_qkv: 'qkv', attn_q: 'qkv', attn_k: 'qkv', attn_v: 'qkv', attn_output: 'o', ffn_down: 'down',
    ffn_gate: 'gate_up', ffn_up: 'gate_up', token_embd: 'head', output: 'head' }[m[1]] ?? '';
}

/**
 * Weight bytes a matvec dispatch reads: its chunk's planes (docs/FORMAT.md), gate and up for swiglu, q, k and v for
 * the stacked copy. @param {any} manifest @param {string} label
 */
function labelBytes(manifest, label) {
  const m = /^matvec (swiglu )?(\S+?)(?: \(stacked\))?@(\d+)$/.exec(label);
  if (!m) return 0;
  /** @param {string} name @param {number | null} rowStart  null: every chunk */
  const bytesOf = (name, rowStart) => {
    /** @type {any[]} */
    const chunks = manifest.tensors[name].chunks;
    return chunks.filter((ch) => rowStart === null || ch.rows[0] === rowStart).reduce((n, ch) => n + chunkBytes(ch), 0);
  };
  const [, swiglu, name, at] = m;
  if (name.endsWith('attn_qkv')) {
    const b = name.slice(0, -'attn_qkv'.length);
    return ['q', 'k', 'v'].reduce((n, w) => n + bytesOf(`${b}attn_${w}.weight`, null), 0);
  }
  const bytes = bytesOf(name, Number(at));
  return swiglu ? bytes + bytesOf(name.replace('ffn_gate', 'ffn_up'), Number(at)) : bytes;
}

/**
 * GPU time of one dispatch of a kernel that does almost nothing (one workgroup bumps one word), in microseconds:
 * `dependent`, every dispatch bumps the same word, so each waits on the one before (a barrier between them, as
 * between a step's kernels: the fixed cost every dispatch of a step pays on this stack); `independent`, each bumps
 * its own buffer, so none needs a barrier (the launch cost alone).
 * @param {GPUDevice} device @param {(p: any[]) => Promise<number>} gpuMs
 */
async function emptyDispatchUs(device, gpuMs) {
  const module = device.createShaderModule({ code: `
    @group(0) @binding(0) var<storage, read_write> b: array<u32>;
    @compute @workgroup_size(64) fn main(@builtin(local_invocation_index) i: u32) { if (i == 0u) { b[0] = b[0] + 1u; } }` });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const n = 180;
  const buffers = Array.from({ length: n }, () => device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE }));
  const groups = buffers.map((buffer) => device.createBindGroup({ layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer } }] }));
  const us = async (/** @type {(i: number) => GPUBindGroup} */ group) =>
    (1000 * (await gpuMs(Array.from({ length: n }, (_, i) => ({ label: 'empty', pipeline, bindGroup: group(i), grid: [1, 1, 1] }))))) / n;
  const out = { dependent: await us(() => groups[0]), independent: await us((i) => groups[i]) };
  for (const b of buffers) b.destroy();
  return out;
}

/**
 * Where a prefill pass's time goes (--prefill-profile): the recorded pass of T tokens repeated in one submit (GPU time
 * alone), then each kernel family, and each matmul projection, repeated alone in one pass. Kernels run on whatever
 * the buffers hold, with the Params of a T-token pass. Matmul figures carry their multiply-add rate (2 T rows cols
 * flops per dispatch). With `i8` (a tuning of scripts/matmul_q4_i8.wgsl) also the int8 route's matmul families
 * (profileI8).
 * @param {any} model @param {number} T @param {{WX: number, WY: number, RV: number, TV: number, GS: number} | null} i8
 */
async function profilePrefill(model, T, i8) {
  const { device, state: s } = model;
  model.uniforms.setTokens(T);
  /** @type {{label: string, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: number[]}[]} */
  const prog = model.prefillProgram.map((/** @type {any} */ d) => ({ ...d, grid: d.grid(T) }));
  const matmulRole = (/** @type {string} */ label) => {
    const m = /^matmul \S*?(attn_qkv|attn_q|attn_k|attn_v|attn_output|ffn_down|ffn_gate|ffn_up)\b/.exec(label);
    return m ? { attn_qkv: 'qkv', attn_q: 'qkv', attn_k: 'qkv', attn_v: 'qkv', attn_output: 'o', ffn_down: 'down',
      ffn_gate: 'gate_up',
      ffn_up: 'gate_up' }[m[1]] : null;
  };
  const kind = (/** @type {string} */ label) => {
    const r = matmulRole(label);
    return r ? `matmul_${r}` : label.split(' ')[0];
  };
  /**
   * GPU ms per run of p: (t(2k) - t(k)) / k with k runs in one submit, best of 3.
   * @param {{pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: number[]}[]} p
   */
  const gpuMs = async (p, k = 4) => {
    const run = async (/** @type {number} */ reps) => {
      const enc = device.createCommandEncoder();
      encodeInto(enc, p, reps);
      enc.copyBufferToBuffer(s.token, 0, s.tokenRead, 0, 8);
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      await s.tokenRead.mapAsync(GPUMapMode.READ);
      s.tokenRead.unmap();
      return performance.now() - t0;
    };
    await run(1);
    return perOpSeconds(run, k);
  };
  /**
   * The weight chunk of a matmul dispatch, from the manifest: its rows, columns and storage (null: not a matmul).
   * @param {string} label @returns {{rows: number, cols: number, storage: string} | null}
   */
  const matmulShape = (label) => {
    const m = /^matmul (\S+?)(?: \(stacked\))?@(\d+)$/.exec(label);
    if (!m) return null;
    const tensors = model.manifest.tensors;
    if (m[1].endsWith('attn_qkv')) { // the stacked q, k, v: one chunk of all their rows
      const b = m[1].slice(0, -'attn_qkv'.length);
      const [q, k, v] = ['q', 'k', 'v'].map((w) => tensors[`${b}attn_${w}.weight`]);
      return { rows: q.shape[0] + k.shape[0] + v.shape[0], cols: q.shape[1], storage: q.storage };
    }
    const t = tensors[m[1]];
    const ch = t.chunks.find((/** @type {any} */ c) => c.rows[0] === Number(m[2]));
    return { rows: ch.rows[1] - ch.rows[0], cols: t.shape[1], storage: t.storage };
  };
  /** flops of a matmul dispatch. @param {string} label */
  const flops = (label) => {
    const w = matmulShape(label);
    return w ? 2 * T * w.rows * w.cols : 0;
  };
  const out = /** @type {Record<string, any>} */ ({ tokens: T, dispatches: prog.length });
  // the compute bound, in the same process: each matmul family's rate is also given as a fraction of it
  const peak = await fmaPeak(device) / 1e12;
  out.fma_peak_TFLOPs = peak;
  out.gpu_ms = await gpuMs(prog, 2);
  out.by_kind = {};
  for (const k of [...new Set(prog.map((d) => kind(d.label)))]) {
    const p = prog.filter((d) => kind(d.label) === k);
    const ms = await gpuMs(p, 2);
    const f = p.reduce((n, d) => n + flops(d.label), 0);
    out.by_kind[k] = { dispatches: p.length, gpu_ms: ms, ...(f ? { TFLOPs: f / ms / 1e9, of_fma_peak: f / ms / 1e9 / peak } : {}) };
  }
  if (i8) out.i8 = await profileI8(model, T, prog, kind, matmulShape, gpuMs, i8);
  console.log(`prefill profile: ${JSON.stringify(out)}`);
  return out;
}

/** The entries each bind group was created with (--prefill-i8 rebinds the engine's matmul buffers). */
const bindGroupEntries = /** @type {WeakMap<GPUBindGroup, GPUBindGroupEntry[]>} */ (new WeakMap());

/** Records the entries of every bind group `device` creates from now on in bindGroupEntries. @param {GPUDevice} device */
function recordBindGroups(device) {
  const create = device.createBindGroup.bind(device);
  device.createBindGroup = (desc) => {
    const g = create(desc);
    bindGroupEntries.set(g, [...desc.entries]);
    return g;
  };
}

/**
 * The int8 route in the engine's own prefill pass (--prefill-i8; issue 10, the owner's choice in the stop-21 note):
 * each q4 matmul of the pass redone as scripts/matmul_q4_i8.wgsl's quantize (X rounded to int8 per 32 columns) and
 * main, on the same weight, X, Y and Params buffers. scripts/bench_matmul_i8.mjs measures the same kernels alone, but
 * its processes abort inside Dawn on an H100 while bench_engine's have not. Returned: the first gate matmul's Y by
 * both routes compared (the rounding's error relative to max |Y|); per matmul family the int8 GPU ms (quantize +
 * main, repeated alone as profilePrefill times the f32 families) beside the f32 ms; and the whole pass with every q4
 * matmul swapped, beside the f32 pass. Against an engine that used it, X is rounded once per matmul (gate and up
 * share theirs: an engine would round it once) and o and down write Y instead of adding to it: both small.
 * @param {any} model @param {number} T
 * @param {{label: string, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: number[]}[]} prog  the pass
 * @param {(label: string) => string} kind  a dispatch's family
 * @param {(label: string) => {rows: number, cols: number, storage: string} | null} matmulShape
 * @param {(p: {pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: number[]}[], k?: number) => Promise<number>} gpuMs
 * @param {{WX: number, WY: number, RV: number, TV: number, GS: number}} tuning  matmul_q4_i8.wgsl's overrides for main
 */
async function profileI8(model, T, prog, kind, matmulShape, gpuMs, tuning) {
  const { device } = model;
  const module = device.createShaderModule({ code: await readFile(new URL('matmul_q4_i8.wgsl', import.meta.url), 'utf8') });
  const quantize = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'quantize' } });
  const main = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main', constants: tuning } });
  const q4 = prog.flatMap((d) => {
    const w = matmulShape(d.label);
    const entries = bindGroupEntries.get(d.bindGroup);
    return w && w.storage === 'q4' && entries ? [{ d, w, entries }] : [];
  });
  if (!q4.length) throw new Error('--prefill-i8: the pass has no q4 matmul');
  const maxCols = Math.max(...q4.map((m) => m.w.cols));
  const xq = storageBuffer(device, T * maxCols); //                    int8 X, 4 to a word
  const xs = storageBuffer(device, (8 * T * maxCols) / 32); //          (d, s) per token and group of 32
  /** @param {GPUComputePipeline} p @param {GPUBindingResource[]} resources */
  const group = (p, resources) => device.createBindGroup({ layout: p.getBindGroupLayout(0),
    entries: resources.map((resource, binding) => ({ binding, resource })) });
  const swapped = new Map(q4.map(({ d, w, entries }) => {
    const [qweight, scales, x, y, params] = [0, 1, 2, 3, 4].map((i) => {
      const e = entries.find((en) => en.binding === i);
      if (!e) throw new Error(`--prefill-i8: ${d.label} has no binding ${i}`);
      return e.resource;
    });
    return [d, [
      { pipeline: quantize, bindGroup: group(quantize, [x, { buffer: xq }, { buffer: xs }, params]),
        grid: [Math.ceil((T * w.cols) / 32 / 64), 1, 1] },
      { pipeline: main, bindGroup: group(main, [qweight, scales, { buffer: xq }, { buffer: xs }, y, params]),
        grid: matmulGrid(w.rows, T, tuning) },
    ]];
  }));

  // the first gate matmul (it writes Y; o and down add into theirs) by both routes, from a cleared Y
  const gate = q4.find((m) => kind(m.d.label) === 'matmul_gate_up') ?? q4[0];
  const yBuf = /** @type {GPUBufferBinding} */ (gate.entries.find((e) => e.binding === 3)?.resource).buffer;
  /** @param {typeof prog} p @returns {Promise<Float32Array>} */
  const runAndRead = async (p) => {
    const enc = device.createCommandEncoder();
    enc.clearBuffer(yBuf);
    encodeInto(enc, p);
    device.queue.submit([enc.finish()]);
    return readFloats(device, yBuf);
  };
  const { maxAbs, rel } = relativeError(await runAndRead([gate.d]), await runAndRead(/** @type {any} */ (swapped.get(gate.d))));
  const out = /** @type {Record<string, any>} */ ({ tuning, checked: gate.d.label, rel_error: rel, by_kind: {} });
  console.log(`int8 route: ${gate.d.label} by both routes differs by ${rel.toExponential(2)} of max |Y| ${maxAbs.toPrecision(3)}`);
  if (!(rel < 0.05)) throw new Error('--prefill-i8: the int8 kernel does not compute the same product');

  for (const k of [...new Set(q4.map((m) => kind(m.d.label)))]) {
    const ms = q4.filter((m) => kind(m.d.label) === k);
    const pairs = ms.map((m) => /** @type {any} */ (swapped.get(m.d)));
    const f32Ms = await gpuMs(ms.map((m) => m.d), 2);
    const i8Ms = await gpuMs(pairs.flat(), 2);
    const mainMs = await gpuMs(pairs.map((p) => p[1]), 2);
    const f = ms.reduce((n, m) => n + 2 * T * m.w.rows * m.w.cols, 0);
    out.by_kind[k] = { dispatches: ms.length, f32_ms: f32Ms, i8_ms: i8Ms, i8_main_ms: mainMs, f32_TFLOPs: f / f32Ms / 1e9,
      i8_main_TFLOPs: f / mainMs / 1e9, f32_over_i8: f32Ms / i8Ms };
  }
  out.pass_f32_ms = await gpuMs(prog, 2);
  out.pass_i8_ms = await gpuMs(prog.flatMap((d) => swapped.get(d) ?? [d]), 2);
  console.log(`int8 route: ${JSON.stringify(out)}`);
  xq.destroy();
  xs.destroy();
  return out;
}

/**
 * Counts the bytes of every GPUBuffer `device` creates from now on, live and at peak (destroy() subtracts): the
 * engine's own allocation, not the driver's overhead around it.
 * @param {GPUDevice} device
 */
function trackBuffers(device) {
  const counts = { live: 0, peak: 0 };
  const create = device.createBuffer.bind(device);
  device.createBuffer = (desc) => {
    const b = create(desc);
    counts.live += desc.size;
    counts.peak = Math.max(counts.peak, counts.live);
    const destroy = b.destroy.bind(b);
    let gone = false;
    b.destroy = () => {
      if (!gone) counts.live -= desc.size;
      gone = true;
      destroy();
    };
    return b;
  };
  return counts;
}

const root = pathToFileURL(`${process.cwd()}/`);
const baseUrl = new URL(`${args.package.replace(/\/?$/, '/')}`, root);
const shaderBaseUrl = new URL('webgpu_shaders/', root);
const nPrefill = Number(args.prefill);
const nDecode = Number(args.decode);
const context = args.context ? Number(args.context) : nPrefill + nDecode + 8;
if (!(context >= nPrefill + nDecode + 1)) throw new Error(`--context ${args.context} is below --prefill + --decode + 1`);

const gpu = create(args['dawn-features'] ? [`enable-dawn-features=${args['dawn-features']}`] : []);
const manifest = JSON.parse(await readFile(new URL('manifest.json', baseUrl), 'utf8'));
const passTokens = args['pass-tokens'] ? Number(args['pass-tokens']) : undefined;
const pr = await probe(gpu, manifest, { context, passTokens });
if (!pr.ok || !pr.adapter) throw new Error(pr.reason ?? 'no adapter');
const device = await pr.adapter.requestDevice({ requiredLimits: pr.limits });
const result = /** @type {Record<string, any>} */ ({ adapter: pr.info, dawn_features: args['dawn-features'] ?? '' });
console.log(`adapter: ${JSON.stringify(pr.info)}`);

const copy = await copyBandwidth(device);
result.copy_GBps = copy / 1e9;
const stream = await streamReadBandwidth(device);
result.stream_read_GBps = stream / 1e9;
console.log(`streaming read of 1 GiB: ${(stream / 1e9).toFixed(0)} GB/s (the bound); ` +
  `copyBufferToBuffer 256 MiB: ${(copy / 1e9).toFixed(0)} GB/s (read + write, for comparison)`);

const allocated = trackBuffers(device); // from here on: the engine's buffers only (the bound's are gone)
const i8Tuning = args['prefill-i8'] ? JSON.parse(args['prefill-i8']) : null;
if (i8Tuning && !args['prefill-profile']) throw new Error('--prefill-i8 needs --prefill-profile');
if (i8Tuning) recordBindGroups(device);
const tuning = args.tuning ? { ...TUNING, ...JSON.parse(args.tuning) } : undefined;
if (tuning) result.tuning = tuning;
const model = await loadModel({ device, baseUrl, shaderBaseUrl, fetch: /** @type {any} */ (fileFetch), context, tuning,
  passTokens });
result.pass_tokens = model.passTokens;
result.package = model.manifest.name;
result.model_stats = model.stats;
const needs = pr.needs;
if (!needs) throw new Error('probe() gave no requirements');
result.memory = { context, predicted: needs, allocated_after_load: allocated.live, allocated_peak: 0 };
const tuned = (/** @type {any} */ t) => JSON.stringify([t.matvec, t.matvecLong, t.matmul, t.matmulWide]);
if (tuning && tuned(model.stats.tuning) !== tuned(tuning)) {
  // an A/B that silently ran the default tuning on both sides once went unnoticed (docs/PERFORMANCE.md)
  throw new Error(`--tuning was not applied: the pipelines use ${JSON.stringify(model.stats.tuning)}`);
}

// prefill: nPrefill tokens (passes of model.passTokens, one submit each) (ids are arbitrary but valid), after one warm-up pass
const ids = Array.from({ length: nPrefill }, (_, i) => (i * 7919 + 13) % model.config.vocab_size);
let out = await model.forward(ids, 0);
/** @type {number[]} */
const prefillRates = [];
for (let r = 0; r < Number(args['prefill-repeats']); r++) {
  const t = performance.now();
  out = await model.forward(ids, 0);
  prefillRates.push(nPrefill / ((performance.now() - t) / 1000));
}
const sortedRates = [...prefillRates].sort((a, b) => a - b);
result.prefill_tokens = nPrefill;
result.prefill_tokens_per_s = sortedRates[Math.floor((sortedRates.length - 1) / 2)];
result.prefill_tokens_per_s_all = prefillRates;
console.log(`prefill ${nPrefill} tokens: ${result.prefill_tokens_per_s.toFixed(0)} tokens/s` +
  (prefillRates.length > 1 ? ` (median of ${prefillRates.map((v) => v.toFixed(0)).join(', ')})` : ''));

// decode: greedy, one forward (one submit, 8-byte readback: token and logprob) per token, from position nPrefill
/**
 * @param {Uint32Array | null} mask  uploaded with every token (null: none)
 * @returns {Promise<{ids: Uint32Array, seconds: number}>}
 */
async function decodeRun(mask) {
  let token = out.token;
  const ids = new Uint32Array(nDecode);
  const t0 = performance.now();
  for (let i = 0; i < nDecode; i++) ids[i] = token = (await model.forward([token], nPrefill + i, { mask })).token;
  return { ids, seconds: (performance.now() - t0) / 1000 };
}
const plain = await decodeRun(null);
const decoded = plain.ids;
const decodeS = plain.seconds;
// the greedy ids, to compare engine versions on the same package (random weights: no reference to check against)
result.decode_ids_fnv1a = decoded.reduce((h, id) => Math.imul(h ^ id, 16777619) >>> 0, 2166136261);
console.log(`decoded ids: ${decoded.slice(0, 6).join(' ')} ... fnv1a ${result.decode_ids_fnv1a}`);
const bytes = bytesPerToken(model.manifest, nPrefill + nDecode / 2);
result.decode_tokens = nDecode;
result.decode_tokens_per_s = nDecode / decodeS;
result.bytes_per_token = bytes;
result.bound_tokens_per_s = stream / bytes;
result.bound_by = 'stream_read_1GiB';
result.fraction_of_bound = result.decode_tokens_per_s / result.bound_tokens_per_s;
console.log(`decode ${nDecode} tokens: ${result.decode_tokens_per_s.toFixed(1)} tokens/s`);
console.log(`bound: ${(bytes / 2 ** 20).toFixed(1)} MiB per token -> ${result.bound_tokens_per_s.toFixed(0)} tokens/s; ` +
  `decode is ${(100 * result.fraction_of_bound).toFixed(1)}% of it`);
if (args.mask) {
  // a full mask (every token allowed) written with queue.writeBuffer before every step's submit, as a grammar's is;
  // bracketed by two unmasked runs of the same steps
  const full = new Uint32Array(model.maskWords).fill(0xffffffff);
  const masked = await decodeRun(full);
  const again = await decodeRun(null);
  if (masked.ids.some((id, i) => id !== decoded[i])) throw new Error('decode under a full mask changed the ids');
  const plainRate = (2 * nDecode) / (decodeS + again.seconds);
  result.mask = {
    words: model.maskWords,
    decode_tokens_per_s: plainRate,
    decode_masked_tokens_per_s: nDecode / masked.seconds,
    masked_over_plain: nDecode / masked.seconds / plainRate,
  };
  console.log(`decode with a ${4 * model.maskWords}-byte mask uploaded per token: ` +
    `${result.mask.decode_masked_tokens_per_s.toFixed(1)} tokens/s, without: ${plainRate.toFixed(1)} ` +
    `(mean of the runs before and after) -> ${(100 * result.mask.masked_over_plain).toFixed(1)}%`);
}
if (args.profile) result.profile = await profileDecode(model, nPrefill + nDecode);
result.memory.allocated_peak = allocated.peak;
const mib = (/** @type {number} */ b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
console.log(`GPU memory at context ${context}: weights ${mib(needs.weights)} + stacked q/k/v ${mib(needs.stacked)} + ` +
  `KV cache ${mib(needs.kvCache)} + activations ${mib(needs.activations)} = ${mib(needs.total)} predicted ` +
  `(probe.js requirements); buffers the engine allocated: ${mib(allocated.live)} after load, peak ${mib(allocated.peak)}`);
if (args['prefill-profile']) result.prefill_profile = await profilePrefill(model, Math.min(nPrefill, model.passTokens), i8Tuning);
console.log(JSON.stringify(result));
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 1));
model.destroy();
process.exit(0); // Dawn has been seen to crash at exit after heavy use: results are printed first
