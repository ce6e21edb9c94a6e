// pipelines.js: the WGSL sources, compiled once at load, and the choice of kernel by a tensor's storage.
//
// Every override a kernel's dispatch grid depends on is passed explicitly (the tuning in use, from the declaration
// of each kernel in webgpu_shaders/kernels.json), never left to the shader's default, so grids.js and the compiled
// pipeline always agree even if a shader's defaults change.

import { ShaderError } from './errors.js';
import * as grids from './grids.js';
import { KERNELS, SHADERS, SHADER_FILES, shaderSource } from './kernels.js';

export { SHADERS };

/** @typedef {import('./kernels.js').Constants} Constants */
/** @typedef {import('./grids.js').Grid} Grid */

/**
 * A kernel's override constants for GPUs, or for CPU adapters (its own `cpu` tuning where it declares one).
 * @param {string} shader @param {'gpu' | 'cpu'} kind @returns {Readonly<Constants>}
 */
function tuned(shader, kind) {
  const t = KERNELS[shader].tunings;
  return Object.freeze({ ...(kind === 'cpu' ? t.cpu ?? t.gpu : t.gpu) });
}

/**
 * Override constants per kernel, as kernels.json declares them for GPUs or CPU adapters; grids.js gets the same
 * numbers. matvecLong: matvec.wgsl for rows of at least minCols inputs (the 1.5B shape's ffn_down: 8960), on GPUs
 * only: 128 threads along a row and 2 rows per workgroup give such short, wide matrices 4x the workgroups (chosen by
 * decode rate and per-projection GPU time in the engine on an H200 among 12 tunings, docs/PERFORMANCE.md). CPU
 * adapters (SwiftShader, the browser tests' adapter; llvmpipe) take matvec threads that own whole rows in fewer,
 * longer loops, for every shape (measured on SwiftShader, 2 cores: SmolLM2's q8 head 553 -> 101 ms, a 1536x576 q4
 * 16 -> 3 ms), so matvecLong never applies there. matmulWide: matmul.wgsl for weights of at least minRows rows (gate
 * and up of the 1.5B and 3B shapes), on GPUs only: tiles of 64 rows x 64 tokens over 256 threads (4 x 4 each) where
 * the grid has workgroups to spare; smaller weights keep 64 x 32 tiles over 128 threads for more workgroups
 * (docs/PERFORMANCE.md: 8 x 8 per thread over 64 threads was 8-19% slower for gate + up on an H100).
 * @param {'gpu' | 'cpu'} kind
 */
function tuning(kind) {
  const matvec = KERNELS['matvec.wgsl'];
  const matmul = KERNELS['matmul.wgsl'];
  return Object.freeze({
    matvec: tuned('matvec.wgsl', kind),
    matvecLong: /** @type {Readonly<Constants>} */ (Object.freeze(kind === 'gpu'
      ? { minCols: matvec.long_min_cols ?? Infinity, ...matvec.tunings.gpu_long }
      : { minCols: Infinity, ...tuned('matvec.wgsl', kind) })),
    matvecF32: tuned('matvec_f32.wgsl', kind),
    matvecKq: tuned('matvec_kq.wgsl', kind), //             K-quants (q4k, q5k, q6k)
    matvecKqLong: /** @type {Readonly<Constants>} */ (Object.freeze(kind === 'gpu'
      ? { minCols: KERNELS['matvec_kq.wgsl'].long_min_cols ?? Infinity, ...KERNELS['matvec_kq.wgsl'].tunings.gpu_long }
      : { minCols: Infinity, ...tuned('matvec_kq.wgsl', kind) })),
    matmul: tuned('matmul.wgsl', kind), //                 tiles of 4*RV*WX rows x 4*TV*WY tokens
    matmulWide: /** @type {Readonly<Constants>} */ (Object.freeze(kind === 'gpu'
      ? { minRows: matmul.wide_min_rows ?? Infinity, ...matmul.tunings.gpu_wide }
      : { minRows: Infinity, ...tuned('matmul.wgsl', kind) })),
    matmulF32: tuned('matmul_f32.wgsl', kind),
    matmulKq: tuned('matmul_kq.wgsl', kind),
    matmulKqWide: /** @type {Readonly<Constants>} */ (Object.freeze(kind === 'gpu'
      ? { minRows: KERNELS['matmul_kq.wgsl'].wide_min_rows ?? Infinity, ...KERNELS['matmul_kq.wgsl'].tunings.gpu_wide }
      : { minRows: Infinity, ...tuned('matmul_kq.wgsl', kind) })),
    embed: tuned('embed.wgsl', kind),
    embedF32: tuned('embed_f32.wgsl', kind),
    embedKq: tuned('embed_kq.wgsl', kind),
    rope: tuned('rope_table.wgsl', kind),
    attention: tuned('attention.wgsl', kind), //           prefill, heads larger than 128
    attentionPrefill: tuned('attention_prefill.wgsl', kind), // prefill: BQ queries x BK positions per block, SPLIT
    attentionPrefillCombine: tuned('attention_prefill_combine.wgsl', kind), // prefill, passes of several splits
    // decode: caps on threads and positions per workgroup (grids.attentionSplitShape); EARLY: 1 loads the keys and
    // values first (the GPU tuning: 11-18% less time for this kernel on an H100, docs/PERFORMANCE.md)
    attentionSplit: tuned('attention_split.wgsl', kind),
    attentionCombine: tuned('attention_combine.wgsl', kind), // decode
    swiglu: tuned('swiglu.wgsl', kind),
    bias: tuned('bias.wgsl', kind),
    qkvSplit: tuned('qkv_split.wgsl', kind),
    qkNorm: tuned('qk_norm.wgsl', kind), //                qwen3's per-head q/k RMSNorm
    rmsnorm: tuned('rmsnorm.wgsl', kind),
    argmax: tuned('argmax.wgsl', kind), //                 ITEMS: logits per thread of main_blocks
  });
}

/** The tuning for GPUs. */
export const TUNING = tuning('gpu');
/** The tuning for CPU adapters. */
export const CPU_TUNING = tuning('cpu');

/** @typedef {typeof TUNING} Tuning */

/**
 * The tuning for an adapter: CPU_TUNING on a fallback / software adapter, TUNING otherwise.
 * @param {{vendor?: string, architecture?: string, device?: string, description?: string,
 *          isFallbackAdapter?: boolean} | undefined} info  GPUAdapterInfo (adapter.info, device.adapterInfo)
 * @returns {Tuning}
 */
export function tuningForAdapter(info = {}) {
  const name = `${info.vendor ?? ''} ${info.architecture ?? ''} ${info.device ?? ''} ${info.description ?? ''}`;
  return info.isFallbackAdapter || /swiftshader|llvmpipe|lavapipe/i.test(name) ? CPU_TUNING : TUNING;
}

/**
 * The tuning for this device (tuningForAdapter of its adapter's info).
 * @param {GPUDevice} device
 */
export function tuningFor(device) {
  return tuningForAdapter(/** @type {any} */ (device).adapterInfo);
}

/** Compiled pipelines, cached by (shader, entry point, constants). */
export class Pipelines {
  /**
   * @param {GPUDevice} device
   * @param {Map<string, GPUShaderModule>} modules
   * @param {Tuning} [tuning]  default tuningFor(device)
   */
  constructor(device, modules, tuning) {
    this.device = device;
    this.modules = modules;
    /** Override constants in use (TUNING or CPU_TUNING); ops.js reads its kernels' ones from here too. */
    this.tuning = tuning ?? tuningFor(device);
    /** @type {Map<string, GPUComputePipeline>} */
    this.cache = new Map();
  }

  /**
   * Fetches every file of SHADER_FILES (once each) and compiles every shader of SHADERS with the files it includes
   * (shaderSource); throws ShaderError with the compiler's messages.
   * @param {GPUDevice} device
   * @param {string | URL} baseUrl  the folder holding the .wgsl files
   * @param {typeof fetch} fetchFn
   * @param {AbortSignal} [signal]
   * @param {Tuning} [tuning]  default tuningFor(device)
   */
  static async load(device, baseUrl, fetchFn, signal, tuning) {
    const base = String(baseUrl).endsWith('/') ? String(baseUrl) : `${baseUrl}/`;
    const files = await Promise.all(SHADER_FILES.map(async (name) => {
      const url = new URL(name, base);
      let res;
      try {
        res = await fetchFn(url, { signal });
      } catch (e) {
        if (signal?.aborted) throw signal.reason ?? e;
        throw new ShaderError(`could not fetch kernel ${url}: ${/** @type {Error} */ (e).message}; reinstall the app`);
      }
      if (!res.ok) throw new ShaderError(`could not fetch kernel ${url}: HTTP ${res.status}; reinstall the app`);
      return /** @type {[string, string]} */ ([name, await res.text()]);
    }));
    const texts = new Map(files);
    const modules = new Map();
    for (const name of SHADERS) {
      const code = await shaderSource(name, async (file) => /** @type {string} */ (texts.get(file)));
      const module = device.createShaderModule({ label: name, code });
      const info = await module.getCompilationInfo?.();
      const errors = (info?.messages ?? []).filter((m) => m.type === 'error');
      if (errors.length) {
        throw new ShaderError(`${name} does not compile on this device: ` +
          errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; '));
      }
      modules.set(name, module);
    }
    return new Pipelines(device, modules, tuning);
  }

  /**
   * @param {string} shader
   * @param {string} entry
   * @param {Constants} constants
   * @returns {GPUComputePipeline}
   */
  get(shader, entry, constants) {
    const key = `${shader}:${entry}:${JSON.stringify(constants)}`;
    let p = this.cache.get(key);
    if (!p) {
      const module = this.modules.get(shader);
      if (!module) throw new ShaderError(`kernel ${shader} was not loaded`);
      p = this.device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: entry, constants } });
      this.cache.set(key, p);
    }
    return p;
  }

  /**
   * Refuses a matmul tuning whose tiles need more workgroup memory than this device has, with what to do; Dawn would
   * only reject the pipeline later, as a validation error at dispatch.
   * @param {string} shader @param {{WX: number, WY: number, RV: number, TV: number}} t
   */
  checkTiles(shader, t) {
    const bytes = grids.matmulTileBytes(t);
    const limit = this.device.limits?.maxComputeWorkgroupStorageSize ?? 16384;
    if (bytes > limit) {
      throw new ShaderError(`${shader} tuning ${JSON.stringify(t)} needs ${bytes} bytes of workgroup memory and this ` +
        `device has ${limit}: request the device with probe()'s limits, or use a smaller tile`);
    }
  }

  // --- kernel choice by storage: one forward pass, the weight's storage picks the pipeline and its grid ---------

  /**
   * Decode matrix-vector product (matvec.wgsl for q4/q8, matvec_kq.wgsl for q4k/q5k/q6k, matvec_f32.wgsl for f32;
   * all share one Params layout).
   * @param {import('./package.js').Storage} storage
   * @param {'main' | 'main_norm' | 'main_swiglu'} entry  main_swiglu: q4, q8, q4k only
   * @param {boolean} accumulate  y += W x (entry main only)
   * @param {number} cols  inputs per row: picks tuning.matvecLong from its minCols on, else tuning.matvec
   * @param {boolean} [gelu]  main_swiglu: gate activation gelu_tanh (gemma3's GeGLU) instead of silu
   * @returns {{pipeline: GPUComputePipeline, grid: (rows: number) => Grid}}
   */
  matvec(storage, entry, accumulate, cols, gelu = false) {
    // ACCUMULATE and GELU only where the entry point uses them (an override an entry point never references may be
    // rejected)
    /** @type {Constants} */
    const acc = entry === 'main' ? { ACCUMULATE: accumulate ? 1 : 0 } : entry === 'main_swiglu' ? { GELU: gelu ? 1 : 0 } : {};
    if (storage === 'f32') {
      const t = this.tuning.matvecF32;
      return { pipeline: this.get('matvec_f32.wgsl', entry, { ...t, ...acc }), grid: (rows) => grids.matvecF32Grid(rows, t.R) };
    }
    const kt = ktype(storage);
    if (kt) {
      if (entry === 'main_swiglu' && kt !== 4) throw new ShaderError(`no fused SwiGLU matvec for storage ${storage}`);
      const { minCols, ...long } = this.tuning.matvecKqLong;
      const t = cols >= minCols ? long : this.tuning.matvecKq;
      const pipeline = this.get('matvec_kq.wgsl', entry, { KTYPE: kt, ...t, ...acc });
      return { pipeline, grid: (rows) => grids.matvecGrid(rows, t.TY, t.R) };
    }
    const { minCols, ...long } = this.tuning.matvecLong;
    const t = cols >= minCols ? long : this.tuning.matvec;
    const pipeline = this.get('matvec.wgsl', entry, { QBITS: qbits(storage), ...t, ...acc });
    return { pipeline, grid: (rows) => grids.matvecGrid(rows, t.TY, t.R) };
  }

  /**
   * Prefill matrix product (matmul.wgsl for q4/q8, matmul_kq.wgsl for q4k/q5k/q6k, matmul_f32.wgsl for f32).
   * @param {import('./package.js').Storage} storage
   * @param {boolean} accumulate  Y += X W^T
   * @param {number} rows  the weight's rows: picks tuning.matmulWide from its minRows on, else tuning.matmul
   * @returns {{pipeline: GPUComputePipeline, grid: (rows: number, tokens: number) => Grid}}
   */
  matmul(storage, accumulate, rows) {
    const acc = accumulate ? 1 : 0;
    if (storage === 'f32') {
      const t = this.tuning.matmulF32;
      return { pipeline: this.get('matmul_f32.wgsl', 'main', { ...t, ACCUMULATE: acc }), grid: (rows, T) => grids.matmulF32Grid(rows, T, t.TILE) };
    }
    const kt = ktype(storage);
    if (kt) {
      const { minRows, ...wide } = this.tuning.matmulKqWide;
      const t = rows >= minRows ? wide : this.tuning.matmulKq;
      this.checkTiles('matmul_kq.wgsl', /** @type {any} */ (t));
      const pipeline = this.get('matmul_kq.wgsl', 'main', { KTYPE: kt, ...t, ACCUMULATE: acc });
      return { pipeline, grid: (rows, T) => grids.matmulGrid(rows, T, /** @type {any} */ (t)) };
    }
    const { minRows, ...wide } = this.tuning.matmulWide;
    const t = rows >= minRows ? wide : this.tuning.matmul;
    this.checkTiles('matmul.wgsl', /** @type {any} */ (t));
    const pipeline = this.get('matmul.wgsl', 'main', { QBITS: qbits(storage), ...t, ACCUMULATE: acc });
    return { pipeline, grid: (rows, T) => grids.matmulGrid(rows, T, /** @type {any} */ (t)) };
  }

  /**
   * Embedding lookup (embed.wgsl for q4/q8, embed_kq.wgsl for q4k/q5k/q6k, embed_f32.wgsl for f32).
   * @param {import('./package.js').Storage} storage
   * @param {number} [scale]  every value times it (config.embedding_scale: gemma3), an f32 override
   * @returns {{shader: string, pipeline: GPUComputePipeline, grid: (cols: number, tokens: number) => Grid}}
   */
  embed(storage, scale = 1) {
    if (storage === 'f32') {
      const t = this.tuning.embedF32;
      return { shader: 'embed_f32.wgsl', pipeline: this.get('embed_f32.wgsl', 'main', { ...t, SCALE: scale }), grid: (cols, T) => grids.embedF32Grid(cols, T, t.WG) };
    }
    const kt = ktype(storage);
    if (kt) {
      const t = this.tuning.embedKq;
      // one thread per qweight word of 8 values, as embed.wgsl's q4
      return { shader: 'embed_kq.wgsl', pipeline: this.get('embed_kq.wgsl', 'main', { KTYPE: kt, ...t, SCALE: scale }), grid: (cols, T) => grids.embedGrid(cols, T, 4, t.WG) };
    }
    const t = this.tuning.embed;
    const q = qbits(storage);
    return { shader: 'embed.wgsl', pipeline: this.get('embed.wgsl', 'main', { QBITS: q, ...t, SCALE: scale }), grid: (cols, T) => grids.embedGrid(cols, T, q, t.WG) };
  }
}

/**
 * KTYPE of matvec_kq.wgsl / matmul_kq.wgsl / embed_kq.wgsl for a K-quant storage, 0 for the others.
 * @param {import('./package.js').Storage} storage
 */
export function ktype(storage) {
  return storage === 'q4k' ? 4 : storage === 'q5k' ? 5 : storage === 'q6k' ? 6 : 0;
}

/** @param {import('./package.js').Storage} storage */
function qbits(storage) {
  if (storage === 'q4') return 4;
  if (storage === 'q8') return 8;
  throw new ShaderError(`no quantized kernel for storage ${storage}`);
}
