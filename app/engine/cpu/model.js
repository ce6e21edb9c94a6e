// model.js: the transformer on the CPU, in WebAssembly (cpu_engine.c built by scripts/build_wasm.sh), behind the
// same Model interface as ../gpu/model.js: forward(ids, pos, {logits, mask}) -> {token, logprob, logits?}, manifest,
// config, context, destroy. engine.js runs on either (Engine.fromParts({model, vendor, tokenizerJson})).
//
// Load: manifest.json (checked) -> the module instantiated (its own memory: one model per instance) -> fe_init
// allocates the run state (KV cache included) -> each weight shard fetched, verified (sha256) and copied into the
// heap as it is (the q4 / q8 / f32 planes of docs/FORMAT.md: weights stay 4-bit) -> each tensor's chunks pointed at
// their planes -> the RoPE table written -> (threads > 1) the worker threads started (threads.js), each running its
// share of every matmul and of attention. forward() blocks the thread it runs on (a worker's, in the app); with
// threads its results are the same bits as with one (each output element is computed by one thread).

import { CapacityError, ContextError, EngineError, FormatError, GrammarError } from '../gpu/errors.js';
import { checkForwardArgs } from '../gpu/forward-args.js';
import { fetchManifest, fetchVerified, weightFiles } from '../gpu/package.js';
import { ropeInvFreq, ropeScale } from '../gpu/rope.js';
import { KV_SLOT_POSITIONS } from '../gpu/state.js';
import { WORKER_STACK_BYTES, canShareMemory, defaultThreads, sharedMemory, startWorkers } from './threads.js';

/** The build output beside this module (scripts/build_wasm.sh). */
export const WASM_FILE = 'cpu_engine.wasm';
/** The threaded build (atomics, imported shared memory), for cross-origin isolated pages and Node. */
export const WASM_THREADS_FILE = 'cpu_engine_mt.wasm';
export const DEFAULT_CONTEXT = 2048; // KV positions, capped by the model's context_length
export const DEFAULT_PASS_TOKENS = 128; // prompt tokens per fe_forward call; longer prompts take several
/** wasm32 addresses 4 GiB; the heap must hold the weights, the KV cache and the activations. */
export const MAX_HEAP_BYTES = 4 * 1024 ** 3;

/** cpu_engine.h storage codes and tensor slots. */
const STORAGE = Object.freeze({ f32: 0, q8: 1, q4: 2, q4k: 3, q5k: 4, q6k: 5 });
const SLOT = Object.freeze({ tokenEmbd: 0, outputNorm: 1, output: 2, layer0: 3, perLayer: 16 });
/**
 * Layer tensors in slot order (cpu_engine.h FE_ATTN_NORM .. FE_POST_FFW_NORM); biases only with attention_bias, the
 * q/k norms only with qk_norm, the post norms only with post_norms (gemma3).
 */
const LAYER_TENSORS = Object.freeze(['attn_norm.weight', 'attn_q.weight', 'attn_k.weight', 'attn_v.weight',
  'attn_q.bias', 'attn_k.bias', 'attn_v.bias', 'attn_output.weight', 'ffn_norm.weight', 'ffn_gate.weight',
  'ffn_up.weight', 'ffn_down.weight', 'attn_q_norm.weight', 'attn_k_norm.weight', 'post_attention_norm.weight',
  'post_ffw_norm.weight']);
const POST_NORMS = Object.freeze(['post_attention_norm.weight', 'post_ffw_norm.weight']);
/**
 * Gemma 3's config keys (format version 5; absent: the llama behaviour), read where the CPU engine needs them.
 * @typedef {{embedding_scale?: number, post_norms?: boolean, hidden_act?: string, attention_scale?: number,
 *            sliding_window?: number, layer_types?: string[], rope_theta_sliding?: number}} Gemma3Keys
 */
const ERRORS = ['ok', 'a config value this engine cannot run', 'out of memory', 'called out of order', 'bad arguments'];

/** @typedef {import('../gpu/package.js').Manifest} Manifest */
/** @typedef {import('../gpu/package.js').ModelConfig} ModelConfig */
/**
 * @typedef {object} Exports  cpu_engine.h; pointers are i32 (read them with >>> 0)
 * @property {WebAssembly.Memory} memory
 * @property {(bytes: number) => number} fe_alloc
 * @property {(...args: number[]) => number} fe_init
 * @property {(...args: number[]) => number} fe_options
 * @property {() => number} fe_layer_sliding
 * @property {() => number} fe_rope_cos_sliding
 * @property {() => number} fe_rope_sin_sliding
 * @property {(slot: number, storage: number, rows: number, cols: number, nchunks: number) => number} fe_tensor
 * @property {(slot: number, index: number, row0: number, row1: number, q: number, s: number, h: number) => number} fe_chunk
 * @property {() => number} fe_rope_cos
 * @property {() => number} fe_rope_sin
 * @property {() => number} fe_ids
 * @property {() => number} fe_logits
 * @property {() => number} fe_mask
 * @property {() => number} fe_heap_end
 * @property {(n: number, pos: number, head: number) => number} fe_forward
 * @property {(useMask: number) => number} fe_pick
 * @property {() => number} fe_pick_rest
 * @property {(n: number, sleeps: number) => number} fe_threads
 * @property {() => void} fe_stop
 * @property {(positions: number) => number} fe_kv_slots
 * @property {(save: number, slot: number, n: number) => number} fe_kv_copy
 */

/**
 * Why this engine cannot run a config, or null.
 * @param {ModelConfig} c
 * @returns {string | null}
 */
export function unsupported(c) {
  if (!['llama', 'qwen2', 'qwen3', 'phi3', 'gemma3'].includes(c.architecture)) return `architecture ${c.architecture} is unknown`;
  const act = /** @type {Gemma3Keys} */ (c).hidden_act;
  if (act !== undefined && act !== 'silu' && act !== 'gelu_tanh') return `hidden_act ${act} is unknown`;
  if (c.qk_norm && c.attention_bias) return 'qk_norm with attention_bias is not supported';
  if (c.num_heads % c.num_kv_heads !== 0) return `num_heads ${c.num_heads} is not a multiple of num_kv_heads ${c.num_kv_heads}`;
  if (c.head_dim % 4 !== 0) return `head_dim ${c.head_dim} is not a multiple of 4`;
  if (c.num_layers > 256) return `${c.num_layers} layers is more than the 256 this engine holds`;
  return null;
}

/**
 * Heap bytes a package needs (weights as stored, the KV cache for `context` positions, the activations for
 * `passTokens` tokens, and each extra thread's stack and scores row), to refuse before downloading.
 * @param {Manifest} manifest
 * @param {number} context
 * @param {number} passTokens
 * @param {number} [threads]
 */
export function requirements(manifest, context, passTokens, threads = 1) {
  const c = manifest.config;
  const weights = weightFiles(manifest).reduce((n, f) => n + f.size, 0);
  const kvCache = 2 * 4 * c.num_layers * context * c.num_kv_heads * c.head_dim;
  const hd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  const maxIn = Math.max(c.hidden_size, c.intermediate_size, hd);
  const perToken = 2 * c.hidden_size + 2 * hd + 2 * kvd + 2 * c.intermediate_size + maxIn + maxIn / 32 + 1;
  const ropeTables = /** @type {Gemma3Keys} */ (c).rope_theta_sliding === undefined ? 1 : 2; // gemma3: the sliding layers'
  const activations = 4 * (passTokens * perToken + context * (1 + ropeTables * c.head_dim) + c.vocab_size) + c.vocab_size / 8 +
    (threads - 1) * (WORKER_STACK_BYTES + 4 * context);
  return { weights, kvCache, activations: Math.ceil(activations), total: weights + kvCache + Math.ceil(activations) };
}

/**
 * The compiled module: opts.wasm if given, else fetched from `wasmUrl` (default: cpu_engine.wasm beside this file).
 * @param {{wasm?: BufferSource | WebAssembly.Module, wasmUrl?: string | URL, fetch: typeof fetch, signal?: AbortSignal}} o
 * @returns {Promise<WebAssembly.Module>}
 */
async function compileModule(o) {
  if (o.wasm instanceof WebAssembly.Module) return o.wasm;
  let bytes = o.wasm;
  if (!bytes) {
    const url = o.wasmUrl ?? new URL(WASM_FILE, import.meta.url);
    let res;
    try {
      res = await o.fetch(url, { signal: o.signal });
    } catch (e) {
      if (o.signal?.aborted) throw o.signal.reason ?? e;
      throw new EngineError(`could not fetch the CPU engine ${url}: ${/** @type {Error} */ (e).message}`);
    }
    if (!res.ok) {
      throw new EngineError(`could not fetch the CPU engine ${url}: HTTP ${res.status}; build it with ` +
        'scripts/build_wasm.sh (or reinstall the app)');
    }
    bytes = await res.arrayBuffer();
  }
  return WebAssembly.compile(bytes);
}

/**
 * Fetches a package, verifies it and loads it into a new WebAssembly instance.
 * @param {{baseUrl: string | URL, fetch?: typeof fetch, context?: number, passTokens?: number, threads?: number,
 *          wasm?: BufferSource | WebAssembly.Module, wasmUrl?: string | URL,
 *          wasmThreads?: BufferSource | WebAssembly.Module, wasmThreadsUrl?: string | URL,
 *          onProgress?: (p: {loadedBytes: number, totalBytes: number, file: string}) => void,
 *          signal?: AbortSignal}} opts
 *   context: KV positions to allocate (default min(config.context_length, 2048));
 *   passTokens: prompt tokens per forward call inside (default 128);
 *   threads: threads to compute on (default: the cores, at most 4; 1 where memory cannot be shared: a page that is
 *     not cross-origin isolated); model.stats.threads says how many it got;
 *   wasm: the single-threaded module or its bytes (default: fetched from wasmUrl, itself defaulting to
 *     cpu_engine.wasm here); wasmThreads / wasmThreadsUrl: the same for cpu_engine_mt.wasm (threads > 1).
 * @returns {Promise<Model>}
 */
export async function loadModel(opts) {
  const { signal } = opts;
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);

  // --- config, and whether it fits (before anything big is fetched) ---------------------------------------------
  const manifest = await fetchManifest(opts.baseUrl, fetchFn, signal);
  const c = manifest.config;
  const why = unsupported(c);
  if (why) throw new FormatError(`the CPU engine cannot run ${manifest.name}: ${why}`);
  const context = Math.min(opts.context ?? DEFAULT_CONTEXT, c.context_length);
  const passTokens = Math.min(opts.passTokens ?? DEFAULT_PASS_TOKENS, context);
  if (!(Number.isInteger(context) && context >= 1 && Number.isInteger(passTokens) && passTokens >= 1)) {
    throw new ContextError(`context ${context} and passTokens ${passTokens} must be integers >= 1`);
  }
  const threads = canShareMemory() ? Math.max(1, Math.floor(opts.threads ?? await defaultThreads())) : 1;
  const needs = requirements(manifest, context, passTokens, threads);
  if (needs.total > MAX_HEAP_BYTES) {
    throw new CapacityError(`${manifest.name} needs ${mib(needs.total)} of WebAssembly memory (weights ` +
      `${mib(needs.weights)}, KV cache ${mib(needs.kvCache)} for ${context} positions), more than the ` +
      `${mib(MAX_HEAP_BYTES)} a wasm32 heap holds: choose a smaller context or model`);
  }

  // --- the module and the run state --------------------------------------------------------------------------------
  const module = threads > 1
    ? await compileModule({ wasm: opts.wasmThreads, wasmUrl: opts.wasmThreadsUrl ?? new URL(WASM_THREADS_FILE, import.meta.url), fetch: fetchFn, signal })
    : await compileModule({ wasm: opts.wasm, wasmUrl: opts.wasmUrl, fetch: fetchFn, signal });
  // the threaded build imports its memory (shared with the workers) rather than exporting it
  const memory = threads > 1 ? sharedMemory() : null;
  const instance = await WebAssembly.instantiate(module, memory ? { env: { memory } } : {});
  const ex = /** @type {Exports} */ (/** @type {unknown} */ (memory ? { ...instance.exports, memory } : instance.exports));
  check(ex.fe_init(c.vocab_size, c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads,
    c.head_dim, Math.fround(c.rms_norm_eps), Math.fround(Math.sqrt(c.head_dim)), c.rope_layout === 'interleaved' ? 1 : 0,
    c.attention_bias ? 1 : 0, c.qk_norm ? 1 : 0, context, passTokens), 'allocating the run state', manifest.name);
  setOptions(ex, c, manifest.name);

  // --- weights: each shard copied into the heap unchanged ---------------------------------------------------------
  const files = weightFiles(manifest);
  const totalBytes = files.reduce((n, f) => n + f.size, 0);
  let loadedBytes = 0;
  /** @type {Map<string, number>} shard path -> its address in the heap */
  const shardAt = new Map();
  for (const file of files) {
    const bytes = await fetchVerified(opts.baseUrl, file, fetchFn, {
      signal,
      onBytes: (n) => {
        loadedBytes += n;
        opts.onProgress?.({ loadedBytes, totalBytes, file: file.path });
      },
    });
    const at = ex.fe_alloc(bytes.byteLength) >>> 0;
    if (!at) throw new CapacityError(`out of WebAssembly memory while loading ${file.path} of ${manifest.name}: close other tabs or choose a smaller model`);
    new Uint8Array(ex.memory.buffer, at, bytes.byteLength).set(bytes);
    shardAt.set(file.path, at);
  }
  bindTensors(ex, manifest, shardAt);
  writeRopeTable(ex, c, context);
  /** @type {{stop: () => void} | null} */
  let pool = null;
  if (memory) {
    pool = await startWorkers({ module, memory, exports: ex, count: threads - 1 });
    try {
      // a browser page's main thread may not block (Atomics.wait throws there): it spins while the workers finish
      const mainThread = typeof window !== 'undefined' && typeof document !== 'undefined';
      check(ex.fe_threads(threads, mainThread ? 0 : 1), `starting ${threads} threads`, manifest.name);
    } catch (e) {
      pool.stop();
      throw e;
    }
  }
  return new Model({ manifest, context, passTokens, exports: ex, needs, threads, pool });
}

/** @param {number} n */
const mib = (n) => `${(n / 1024 ** 2).toFixed(0)} MiB`;

/**
 * @param {number} rc  a cpu_engine.h return code
 * @param {string} what
 * @param {string} name
 */
function check(rc, what, name) {
  if (rc === 0) return;
  if (rc === 2) throw new CapacityError(`out of WebAssembly memory while ${what} for ${name}: choose a smaller context or model`);
  throw new FormatError(`the CPU engine refused ${name} while ${what}: ${ERRORS[rc] ?? rc}: rebuild the package`);
}

/**
 * Points every tensor slot at its chunks' planes, checking each shape against the config.
 * @param {Exports} ex
 * @param {Manifest} m
 * @param {Map<string, number>} shardAt
 */
function bindTensors(ex, m, shardAt) {
  const c = m.config;
  const hd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  /** @type {Record<string, [number, number]>} layer tensor -> [rows, cols] */
  const shapes = {
    'attn_norm.weight': [1, c.hidden_size], 'attn_q.weight': [hd, c.hidden_size], 'attn_k.weight': [kvd, c.hidden_size],
    'attn_v.weight': [kvd, c.hidden_size], 'attn_q.bias': [1, hd], 'attn_k.bias': [1, kvd], 'attn_v.bias': [1, kvd],
    'attn_output.weight': [c.hidden_size, hd], 'ffn_norm.weight': [1, c.hidden_size],
    'ffn_gate.weight': [c.intermediate_size, c.hidden_size], 'ffn_up.weight': [c.intermediate_size, c.hidden_size],
    'ffn_down.weight': [c.hidden_size, c.intermediate_size], 'attn_q_norm.weight': [1, c.head_dim],
    'attn_k_norm.weight': [1, c.head_dim], 'post_attention_norm.weight': [1, c.hidden_size],
    'post_ffw_norm.weight': [1, c.hidden_size],
  };
  /** @param {number} slot @param {string} name @param {number} rows @param {number} cols @param {boolean} vector */
  const bind = (slot, name, rows, cols, vector) => {
    const t = m.tensors[name];
    if (!t) throw new FormatError(`${m.name} has no tensor ${name}: rebuild the package`);
    const shape = t.shape.length === 1 ? [1, t.shape[0]] : t.shape;
    if (shape[0] !== rows || shape[1] !== cols) {
      throw new FormatError(`${name} is [${t.shape}], the config says [${vector ? cols : [rows, cols]}]: rebuild the package`);
    }
    if (vector && t.storage !== 'f32') throw new FormatError(`${name} is ${t.storage}; the CPU engine reads vectors as f32`);
    const storage = STORAGE[/** @type {keyof typeof STORAGE} */ (t.storage)];
    if (storage === undefined) throw new FormatError(`${name} is stored as ${t.storage}, which the CPU engine cannot read: rebuild the package`);
    check(ex.fe_tensor(slot, storage, rows, cols, t.chunks.length), `declaring ${name}`, m.name);
    t.chunks.forEach((ch, i) => {
      const base = /** @type {number} */ (shardAt.get(ch.file));
      /** @type {Record<string, [number, number] | undefined>} plane -> [offset, bytes] */
      const planes = ch.planes;
      const q = planes[t.storage === 'f32' ? 'data' : 'qweight'];
      const s = t.storage === 'f32' ? undefined : planes[storage >= STORAGE.q4k ? 'super' : 'scales'];
      const h = planes.qhigh;
      if (!q || (t.storage !== 'f32' && !s)) throw new FormatError(`${name} lacks a plane of ${t.storage}: rebuild the package`);
      check(ex.fe_chunk(slot, i, ch.rows[0], ch.rows[1], base + q[0], s ? base + s[0] : 0, h ? base + h[0] : 0),
        `binding ${name}`, m.name);
    });
  };
  bind(SLOT.tokenEmbd, 'token_embd.weight', c.vocab_size, c.hidden_size, false);
  bind(SLOT.outputNorm, 'output_norm.weight', 1, c.hidden_size, true);
  bind(SLOT.output, c.tie_word_embeddings ? 'token_embd.weight' : 'output.weight', c.vocab_size, c.hidden_size, false);
  const postNorms = /** @type {Gemma3Keys} */ (c).post_norms;
  for (let i = 0; i < c.num_layers; i++) {
    LAYER_TENSORS.forEach((n, k) => {
      if (n.endsWith('.bias') && !c.attention_bias) return;
      if ((n === 'attn_q_norm.weight' || n === 'attn_k_norm.weight') && !c.qk_norm) return;
      if (POST_NORMS.includes(n) && !postNorms) return;
      const [rows, cols] = shapes[n];
      bind(SLOT.layer0 + i * SLOT.perLayer + k, `blk.${i}.${n}`, rows, cols, rows === 1);
    });
  }
}

/**
 * cos and sin of pos * inv_freq[i] for every position, as model_prep/reference/forward.py's RunState: computed in
 * f64 (inv_freq = 1 / (theta^(2i / D) * factor[i]), times config.rope_attn_factor: ../gpu/rope.js), rounded to f32.
 * @param {Exports} ex
 * @param {ModelConfig} c
 * @param {number} context
 */
function writeRopeTable(ex, c, context) {
  const half = c.head_dim / 2;
  const cos = new Float32Array(ex.memory.buffer, ex.fe_rope_cos() >>> 0, context * half);
  const sin = new Float32Array(ex.memory.buffer, ex.fe_rope_sin() >>> 0, context * half);
  const invFreq = ropeInvFreq(c); // [D/2], divided by config.rope_freq_factors where the package has them
  const scale = ropeScale(c); // config.rope_attn_factor (phi3's longrope) or 1
  fillRope(cos, sin, invFreq, scale, half, context);
  const theta = /** @type {Gemma3Keys} */ (c).rope_theta_sliding;
  if (theta !== undefined) { // gemma3's sliding layers: plain RoPE of their own base (no factors, no attention factor)
    const cosS = new Float32Array(ex.memory.buffer, ex.fe_rope_cos_sliding() >>> 0, context * half);
    const sinS = new Float32Array(ex.memory.buffer, ex.fe_rope_sin_sliding() >>> 0, context * half);
    fillRope(cosS, sinS, ropeInvFreq({ rope_theta: theta, head_dim: c.head_dim }), 1, half, context);
  }
}

/**
 * @param {Float32Array} cos @param {Float32Array} sin @param {Float64Array} invFreq @param {number} scale
 * @param {number} half @param {number} context
 */
function fillRope(cos, sin, invFreq, scale, half, context) {
  for (let p = 0; p < context; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * invFreq[i];
      cos[p * half + i] = Math.cos(a) * scale;
      sin[p * half + i] = Math.sin(a) * scale;
    }
  }
}

/**
 * Gemma 3's options (cpu_engine.h fe_options) and which layers slide, for a config that has any of its keys.
 * @param {Exports} ex
 * @param {ModelConfig} c
 * @param {string} name
 */
function setOptions(ex, c, name) {
  const g = /** @type {Gemma3Keys} */ (c);
  const any = g.embedding_scale !== undefined || g.post_norms || (g.hidden_act ?? 'silu') !== 'silu' ||
    g.attention_scale !== undefined || g.sliding_window !== undefined || g.rope_theta_sliding !== undefined;
  if (!any) return;
  check(ex.fe_options(Math.fround(g.embedding_scale ?? 0), g.post_norms ? 1 : 0, g.hidden_act === 'gelu_tanh' ? 1 : 0,
    Math.fround(g.attention_scale ?? 0), g.sliding_window ?? 0, g.rope_theta_sliding !== undefined ? 1 : 0),
  "setting gemma3's options", name);
  const flags = new Int32Array(ex.memory.buffer, ex.fe_layer_sliding() >>> 0, c.num_layers);
  (g.layer_types ?? []).forEach((t, i) => { flags[i] = t === 'sliding' ? 1 : 0; });
}

/** A loaded model: weights and run state in a WebAssembly heap. */
export class Model {
  /**
   * @param {{manifest: Manifest, context: number, passTokens: number, exports: Exports,
   *          needs: ReturnType<typeof requirements>, threads?: number, pool?: {stop: () => void} | null}} parts
   */
  constructor(parts) {
    this.manifest = parts.manifest;
    /** @type {ModelConfig} */
    this.config = parts.manifest.config;
    /** KV positions allocated: forward() accepts positions 0 .. context - 1. */
    this.context = parts.context;
    /** Tokens per forward call inside the module. */
    this.passTokens = parts.passTokens;
    /** @type {Exports | null} null once destroyed */
    this.ex = parts.exports;
    /** u32 words of a token bitmask (forward's opts.mask): ceil(vocab / 32) */
    this.maskWords = Math.ceil(this.config.vocab_size / 32);
    /** What the engine is and the heap it took (bytes), for the UI and benchmarks. */
    this.stats = { kind: 'cpu-wasm', threads: parts.threads ?? 1, heapBytes: parts.exports.fe_heap_end() >>> 0, needs: parts.needs };
    /** the worker threads, stopped with the model */
    this.pool = parts.pool ?? null;
    /** @type {Promise<unknown>} forward calls run one at a time (they share the run state) */
    this.queue = Promise.resolve();
    this.destroyed = false;
    /**
     * KV positions each of two slots holds aside (kv-session.js keeps a conversation there); their memory
     * (2 x layers x 2 x positions x KV*D f32) is taken on the first save; 0 once that failed (no slots then).
     */
    this.kvSlotPositions = Math.min(this.context, KV_SLOT_POSITIONS);
    this.slotsMade = false;
  }

  /**
   * Copies KV cache positions 0 .. n-1 into slot 0 or 1 (after every forward call made before).
   * @param {number} slot @param {number} n
   */
  saveKv(slot, n) {
    return this.enqueue(() => this.copyKv(1, slot, n));
  }

  /**
   * Copies slot 0 or 1's positions 0 .. n-1 back into the KV cache (before any forward call made after).
   * @param {number} slot @param {number} n
   */
  restoreKv(slot, n) {
    return this.enqueue(() => this.copyKv(0, slot, n));
  }

  /** Runs f after every call queued before (forward, KV copies): they share the run state.
   * @template T @param {() => T | Promise<T>} f @returns {Promise<T>} */
  enqueue(f) {
    const run = this.queue.then(f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** @param {number} save @param {number} slot @param {number} n */
  copyKv(save, slot, n) {
    const ex = this.ex;
    if (this.destroyed || !ex) throw new ContextError('this model was destroyed: load it again');
    if (!this.slotsMade) {
      const rc = ex.fe_kv_slots(this.kvSlotPositions);
      if (rc !== 0) {
        this.kvSlotPositions = 0; // out of memory: the session goes on without slots
        throw new EngineError(`the CPU engine could not keep KV slots: ${ERRORS[rc] ?? rc}`);
      }
      this.slotsMade = true;
    }
    const rc = ex.fe_kv_copy(save, slot, n);
    if (rc !== 0) throw new EngineError(`the CPU engine could not copy KV positions: ${ERRORS[rc] ?? rc}`);
  }

  /**
   * Runs tokens `ids` at positions pos .. pos + n - 1, filling the KV cache (model_prep/reference/forward.py
   * `forward`); prompts longer than passTokens run in several calls. Returns, for the last position: `token`, the
   * argmax of the logits among the tokens opts.mask allows (ties to the lowest id); `logprob`, its log-probability
   * under the softmax over the allowed tokens (nats, <= 0); with opts.logits, the raw logits f32[vocab] (unmasked).
   * opts.mask: u32[maskWords], bit i % 32 of word i / 32 set = token i allowed; null or absent = no constraint.
   * Throws GrammarError when the mask allows no token or has the wrong length, ContextError on bad positions or ids.
   * @param {Int32Array | Uint32Array | number[]} ids
   * @param {number} pos  position of ids[0]
   * @param {{logits?: boolean, mask?: Uint32Array | null}} [opts]
   * @returns {Promise<{token: number, logprob: number, logits?: Float32Array}>}
   */
  forward(ids, pos, opts = {}) {
    return this.enqueue(() => this.run(ids, pos, !!opts.logits, opts.mask ?? null));
  }

  /**
   * @param {Int32Array | Uint32Array | number[]} ids
   * @param {number} pos
   * @param {boolean} wantLogits
   * @param {Uint32Array | null} mask
   * @returns {{token: number, logprob: number, logits?: Float32Array}}
   */
  run(ids, pos, wantLogits, mask) {
    const ex = this.ex;
    if (this.destroyed || !ex) throw new ContextError('this model was destroyed: load it again');
    const n = ids.length;
    const vocab = this.config.vocab_size;
    checkForwardArgs(ids, pos, mask, { context: this.context, vocab, maskWords: this.maskWords });
    const P = this.passTokens;
    for (let start = 0; start < n; start += P) {
      const T = Math.min(P, n - start);
      const last = start + T === n;
      const idsView = new Int32Array(ex.memory.buffer, ex.fe_ids() >>> 0, T);
      for (let t = 0; t < T; t++) idsView[t] = ids[start + t];
      const rc = ex.fe_forward(T, pos + start, last ? 1 : 0);
      if (rc !== 0) throw new EngineError(`the CPU engine's forward pass failed: ${ERRORS[rc] ?? rc}`);
    }
    if (mask) new Uint32Array(ex.memory.buffer, ex.fe_mask() >>> 0, this.maskWords).set(mask);
    const token = ex.fe_pick(mask ? 1 : 0);
    if (token < 0) {
      throw new GrammarError('no token is allowed by the grammar at this step: the grammar cannot be continued with ' +
        "this model's vocabulary, so the answer cannot be constrained (check the schema and the tokenizer)");
    }
    const logprob = -Math.log1p(ex.fe_pick_rest());
    if (!wantLogits) return { token, logprob };
    const logits = new Float32Array(ex.memory.buffer, ex.fe_logits() >>> 0, vocab).slice();
    return { token, logprob, logits };
  }

  /** Drops the instance (its memory goes with it once nothing refers to it); later forward calls throw. */
  destroy() {
    this.destroyed = true;
    const drop = () => {
      this.ex = null;
      this.pool?.stop();
      this.pool = null;
    };
    this.queue.then(drop, drop);
  }
}
