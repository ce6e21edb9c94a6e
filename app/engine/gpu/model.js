// model.js: the transformer on the GPU, read top to bottom like llama2.c's run.c:
//   config (manifest.json) -> weights (GPU buffers, one per shard) -> run state (activations and KV cache, allocated
//   once) -> the forward pass, recorded once as dispatches -> forward(ids, pos).
// The math is model_prep/reference/forward.py's `forward`, in f32, with the kernels of webgpu_shaders/.
//
// Per decode token the host writes 8 bytes (the token id and its position, into preallocated storage buffers), and
// under a grammar its token bitmask (vocab / 8 bytes, into another), submits one command buffer (the prerecorded
// dispatches in one compute pass, encoded while the GPU ran the previous step: they do not depend on the token or
// the mask) and reads back 8 bytes (the masked argmax and its log-probability). The token id is uploaded rather than
// chained from the previous argmax on the GPU: the host layer may sample (temperature) instead of taking the
// argmax, and it reads each token back anyway to detokenize and stop.

import { MAP_READ_MODE, USAGE, Uniforms } from './buffers.js';
import { CapacityError, ContextError, FormatError, GrammarError, ShaderError } from './errors.js';
import { checkForwardArgs } from './forward-args.js';
import { argmaxMaskWords } from './grids.js';
import { DecodeOps, PrefillOps } from './ops.js';
import { fetchManifest } from './package.js';
import { CPU_TUNING, Pipelines, tuningFor } from './pipelines.js';
import { DEFAULT_PASS_TOKENS, contextFor, requirements, unsupported } from './probe.js';
import { KV_BYTES, KV_SLOT_POSITIONS, allocRunState, destroyRunState, writeRopeTable } from './state.js';
import { loadWeights, stackRows, vectorBinding } from './weights.js';

/** argmax.wgsl's output: u32 token id, f32 logprob. */
const TOKEN_BYTES = 8;
/** The token id argmax.wgsl writes when the mask allows no token. */
const NO_TOKEN = 0xffffffff;

/** @typedef {import('./weights.js').Tensor} Tensor */
/** @typedef {import('./package.js').ModelConfig} ModelConfig */
/** @typedef {import('./state.js').RunState} RunState */
/** @typedef {import('./ops.js').Dispatch} Dispatch */
/**
 * A decode dispatch: `grid` for the whole context; `byEnd`, for the dispatches whose grid shrinks with the positions
 * the step reads (attention_split.wgsl: one row of workgroups per split up to the token's), the grids by END_STEP
 * bucket of the step's end (one past its position), made on first use; null for the rest.
 * @typedef {{label: string, pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, grid: number[],
 *   byEnd: {of: (tokens: number, end?: number) => number[], grids: Map<number, number[]>} | null}} FixedDispatch
 */

/**
 * Positions per bucket of a decode grid that follows the step's end: a step encoded for an end rounded up to this
 * serves every end up to it (the workgroups past the token exit at once), so the step encoded ahead is mostly reused,
 * and at most context / END_STEP grids are kept per dispatch (no allocation per token after the first of each).
 */
const END_STEP = 64;

/**
 * @typedef {object} LayerWeights  one transformer block; shapes [rows = out, cols = in], H*D = heads * head_dim
 * @property {Tensor} attnNorm   [hidden]
 * @property {Tensor} wq         [H*D, hidden]
 * @property {Tensor} wk         [KV*D, hidden]
 * @property {Tensor} wv         [KV*D, hidden]
 * @property {Tensor | null} wqkv [(H+2KV)*D, hidden]: wq, wk, wv stacked (a view of the shard where the package
 *   stores them back to back, else a copy made at load), or null
 * @property {Tensor | null} bq  [H*D] (qwen2) or null
 * @property {Tensor | null} bk  [KV*D]
 * @property {Tensor | null} bv  [KV*D]
 * @property {Tensor | null} qNorm  [D] (qwen3: RMSNorm of each q head before RoPE) or null
 * @property {Tensor | null} kNorm  [D] (each k head)
 * @property {Tensor | null} [postAttnNorm]  [hidden] (gemma3's post_norms: RMSNorm of the attention output) or null
 * @property {Tensor | null} [postFfwNorm]   [hidden] (gemma3: RMSNorm of the MLP output) or null
 * @property {Tensor} wo         [hidden, H*D]
 * @property {Tensor} ffnNorm    [hidden]
 * @property {Tensor} wGate      [intermediate, hidden]
 * @property {Tensor} wUp        [intermediate, hidden]
 * @property {Tensor} wDown      [hidden, intermediate]
 */
/**
 * @typedef {object} Weights
 * @property {Tensor} tokenEmbd   [vocab, hidden]
 * @property {LayerWeights[]} layers
 * @property {Tensor} outputNorm  [hidden]
 * @property {Tensor} output      [vocab, hidden]; the same tensor as tokenEmbd when tied
 */

/**
 * Fetches a package, verifies it, uploads it and records the forward pass. The device must have been created with
 * at least the limits probe() returned for this package.
 * @param {{device: GPUDevice, baseUrl: string | URL, shaderBaseUrl: string | URL, fetch?: typeof fetch,
 *          context?: number, passTokens?: number, tuning?: import('./pipelines.js').Tuning,
 *          onProgress?: (p: {loadedBytes: number, totalBytes: number, file: string}) => void,
 *          signal?: AbortSignal}} opts
 *   context: KV positions to allocate (default min(config.context_length, 2048));
 *   passTokens: prompt tokens per prefill pass (default probe.js DEFAULT_PASS_TOKENS); longer prompts run in several
 *   passes;
 *   tuning: kernel override constants (default pipelines.js tuningFor(device); benchmarks try others); the run
 *   state is sized with it.
 * @returns {Promise<Model>}
 */
export async function loadModel(opts) {
  const { device, signal } = opts;
  const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);

  // --- config ---------------------------------------------------------------------------------------------------
  const manifest = await fetchManifest(opts.baseUrl, fetchFn, signal);
  const config = manifest.config;
  const why = unsupported(config);
  if (why) throw new FormatError(`this engine cannot run ${manifest.name}: ${why}`);
  const context = contextFor(config, opts.context);
  const passTokens = opts.passTokens ?? DEFAULT_PASS_TOKENS;
  if (!(context >= 1 && passTokens >= 1 && passTokens <= 65535)) {
    throw new ContextError(`context ${context} must be >= 1 and passTokens ${passTokens} in 1..65535 (attention.wgsl grid)`);
  }
  const tuning = opts.tuning ?? tuningFor(device);
  const needs = requirements(manifest, context, passTokens, tuning);
  const lim = device.limits;
  if (needs.binding > lim.maxStorageBufferBindingSize || needs.buffer > lim.maxBufferSize) {
    throw new CapacityError(`${manifest.name} with a context of ${context} needs maxStorageBufferBindingSize >= ` +
      `${needs.binding} and maxBufferSize >= ${needs.buffer}; this device has ${lim.maxStorageBufferBindingSize} and ` +
      `${lim.maxBufferSize}: create it with requiredLimits from probe(), or choose a smaller context`);
  }

  // --- kernels, then weights (compile first: a broken kernel should not cost a 100 MB download) ------------------
  const pipelines = await Pipelines.load(device, opts.shaderBaseUrl, fetchFn, signal, tuning);
  const store = await loadWeights(device, manifest, { baseUrl: opts.baseUrl, fetch: fetchFn, signal, onProgress: opts.onProgress });
  // --- run state and the recorded forward pass, under error scopes (popped whatever happens) --------------------
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  /** @type {RunState | undefined} */
  let state;
  /** @type {Uniforms | undefined} */
  let uniforms;
  /** @type {Model | undefined} */
  let model;
  /** @type {unknown} */
  let failure;
  try {
    const weights = bindWeights(config, store.tensor);
    weights.layers.forEach((lw, i) => {
      const stacked = stackRows(device, `blk.${i}.attn_qkv (stacked)`, [lw.wq, lw.wk, lw.wv]);
      if (!stacked) return; // decode then runs three matvecs
      lw.wqkv = stacked.tensor;
      if (stacked.buffer) store.shards.set(stacked.tensor.name, stacked.buffer); // a copy: freed with the shards
    });

    // run state: every activation and the KV cache, once
    state = allocRunState(device, config, context, passTokens, pipelines.tuning);
    writeRopeTable(device, state, config, context);
    writeQKVBias(device, state, config, weights);
    uniforms = new Uniforms(device);

    // the forward pass, recorded three ways
    const ctx = { device, pipelines, uniforms, config, context, passTokens };
    const decode = new DecodeOps(ctx); // one token: layers, head on x, argmax
    recordLayers(decode, weights, state);
    recordHead(decode, weights, state, state.x);
    const prefill = new PrefillOps(ctx); // T tokens: layers only
    recordLayers(prefill, weights, state);
    const head = new DecodeOps(ctx); // after the last prefill pass: head on the last row (copied to xLast), argmax
    recordHead(head, weights, state, state.xLast);

    const t = pipelines.tuning;
    const used = { kind: t === CPU_TUNING ? 'cpu' : 'gpu', matvec: t.matvec, matvecLong: t.matvecLong, matmul: t.matmul,
      matmulWide: t.matmulWide };
    model = new Model({ device, manifest, context, passTokens, tuning: used, shards: store.shards, state, uniforms,
      decode: decode.dispatches, prefill: prefill.dispatches, head: head.dispatches });
  } catch (e) {
    failure = e;
  }
  const oom = await device.popErrorScope();
  const invalid = await device.popErrorScope();
  if (oom && !failure) failure = new CapacityError(`out of GPU memory while allocating the run state: ${oom.message}; choose a smaller context`);
  if (invalid && !failure) failure = new ShaderError(`recording the forward pass failed validation: ${invalid.message}`);
  if (failure || !model) {
    for (const b of store.shards.values()) b.destroy();
    if (state) destroyRunState(state);
    uniforms?.destroy();
    throw failure;
  }
  return model;
}

/**
 * The tensors of each layer, by their GGUF names (docs/FORMAT.md), checked against the config's shapes.
 * @param {ModelConfig} c
 * @param {(name: string) => Tensor} tensor
 * @returns {Weights}
 */
function bindWeights(c, tensor) {
  const hd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
  /** @param {string} name @param {number} rows @param {number} cols */
  const get = (name, rows, cols) => {
    const t = tensor(name);
    if (t.rows !== rows || t.cols !== cols) {
      throw new FormatError(`${name} is [${t.rows}, ${t.cols}], the config says [${rows}, ${cols}]: rebuild the package`);
    }
    return t;
  };
  const layers = Array.from({ length: c.num_layers }, (_, i) => {
    const b = `blk.${i}.`;
    return {
      attnNorm: get(`${b}attn_norm.weight`, 1, c.hidden_size),
      wq: get(`${b}attn_q.weight`, hd, c.hidden_size),
      wk: get(`${b}attn_k.weight`, kvd, c.hidden_size),
      wv: get(`${b}attn_v.weight`, kvd, c.hidden_size),
      wqkv: null,
      bq: c.attention_bias ? get(`${b}attn_q.bias`, 1, hd) : null,
      bk: c.attention_bias ? get(`${b}attn_k.bias`, 1, kvd) : null,
      bv: c.attention_bias ? get(`${b}attn_v.bias`, 1, kvd) : null,
      qNorm: c.qk_norm ? get(`${b}attn_q_norm.weight`, 1, c.head_dim) : null,
      kNorm: c.qk_norm ? get(`${b}attn_k_norm.weight`, 1, c.head_dim) : null,
      wo: get(`${b}attn_output.weight`, c.hidden_size, hd),
      ffnNorm: get(`${b}ffn_norm.weight`, 1, c.hidden_size),
      wGate: get(`${b}ffn_gate.weight`, c.intermediate_size, c.hidden_size),
      wUp: get(`${b}ffn_up.weight`, c.intermediate_size, c.hidden_size),
      wDown: get(`${b}ffn_down.weight`, c.hidden_size, c.intermediate_size),
      postAttnNorm: c.post_norms ? get(`${b}post_attention_norm.weight`, 1, c.hidden_size) : null,
      postFfwNorm: c.post_norms ? get(`${b}post_ffw_norm.weight`, 1, c.hidden_size) : null,
    };
  });
  const tokenEmbd = get('token_embd.weight', c.vocab_size, c.hidden_size);
  return {
    tokenEmbd,
    layers,
    outputNorm: get('output_norm.weight', 1, c.hidden_size),
    output: c.tie_word_embeddings ? tokenEmbd : get('output.weight', c.vocab_size, c.hidden_size),
  };
}

/**
 * Copies each layer's q, k, v biases (qwen2) side by side into s.qkvBias[i], the layout of s.qkv, for decode
 * attention to add; without biases the buffers keep their zeros.
 * @param {GPUDevice} device
 * @param {RunState} s
 * @param {ModelConfig} c
 * @param {Weights} w
 */
function writeQKVBias(device, s, c, w) {
  const enc = device.createCommandEncoder();
  w.layers.forEach((lw, i) => {
    let at = 0;
    for (const b of [lw.bq, lw.bk, lw.bv]) {
      if (!b) return;
      const src = vectorBinding(b);
      const bytes = 4 * b.cols;
      enc.copyBufferToBuffer(src.buffer, src.offset ?? 0, s.qkvBias[i], at, bytes);
      at += bytes;
    }
  });
  device.queue.submit([enc.finish()]);
}

/**
 * The transformer blocks, as model_prep/reference/forward.py `forward` (T tokens at positions[0..T-1]).
 * @param {DecodeOps | PrefillOps} ops
 * @param {Weights} w
 * @param {RunState} s
 */
function recordLayers(ops, w, s) {
  ops.embed(s.ids, w.tokenEmbd, s.x); //                                         x = token_embd[ids]      [T, hidden]
  w.layers.forEach((lw, i) => {
    const at = `blk.${i}`;
    // attention: x += Wo attention(rope(Wq xn + bq), rope(Wk xn + bk), Wv xn + bv),   xn = rmsnorm(x) * attn_norm
    //   (qwen3: rope(qnorm(Wq xn)), rope(knorm(Wk xn)), each head of q and k RMS-normed before RoPE)
    const xn = ops.rmsnorm(s.x, lw.attnNorm, s.xb); //                          decode: folded into the matvecs
    ops.projectQKV(xn, lw, s, i); //                 q [T, H*D], k, v [T, KV*D] (decode: one qkv row); qk norm
    ops.attend(s, i, at); //                    rope(q + bq); cache = rope(k + bk), v + bv; att [T, H*D] = attention
    if (lw.postAttnNorm) { //                                                   gemma3: x += rmsnorm(Wo att) * w
      ops.linear({ x: s.att }, lw.wo, s.xb); //                                   (xb is free until the next norm)
      ops.postNorm(s.xb, lw.postAttnNorm, s.x);
    } else {
      ops.linear({ x: s.att }, lw.wo, s.x, { accumulate: true }); //           x += Wo att
    }
    // MLP: x += Wdown (silu(Wgate xn) * (Wup xn)),   xn = rmsnorm(x) * ffn_norm
    const xm = ops.rmsnorm(s.x, lw.ffnNorm, s.xb);
    ops.ffnGateUp(xm, lw.wGate, lw.wUp, s.hb, s.hGate, s.hUp); //             hb [T, intermediate]
    if (lw.postFfwNorm) { //                                                    gemma3: x += rmsnorm(Wdown hb) * w
      ops.linear({ x: s.hb }, lw.wDown, s.xb);
      ops.postNorm(s.xb, lw.postFfwNorm, s.x);
    } else {
      ops.linear({ x: s.hb }, lw.wDown, s.x, { accumulate: true }); //         x += Wdown hb
    }
  });
}

/**
 * The head on one position: logits = output (rmsnorm(x) * output_norm); token = the argmax of the logits the mask
 * allows, and its log-probability under their softmax.
 * @param {DecodeOps} ops
 * @param {Weights} w
 * @param {RunState} s
 * @param {GPUBuffer} x  f32[hidden]: the row the head reads
 */
function recordHead(ops, w, s, x) {
  ops.linear(ops.rmsnorm(x, w.outputNorm, s.xb), w.output, s.logits); //      logits [vocab]
  ops.argmax(s.logits, s.mask, s.argmaxStates, s.token); //                   token [2]: id, logprob
}

/** A loaded model: weights and run state on the GPU, the forward pass recorded. */
export class Model {
  /**
   * @param {{device: GPUDevice, manifest: import('./package.js').Manifest, context: number, passTokens: number,
   *          tuning: {kind: string, matvec: object, matvecLong: object, matmul: object, matmulWide: object},
   *          shards: Map<string, GPUBuffer>, state: RunState, uniforms: Uniforms,
   *          decode: Dispatch[], prefill: Dispatch[], head: Dispatch[]}} parts
   */
  constructor(parts) {
    this.device = parts.device;
    this.manifest = parts.manifest;
    /** @type {ModelConfig} */
    this.config = parts.manifest.config;
    /** KV positions allocated: forward() accepts positions 0 .. context - 1. */
    this.context = parts.context;
    /** Tokens per prefill pass. */
    this.passTokens = parts.passTokens;
    this.shards = parts.shards;
    this.state = parts.state;
    this.uniforms = parts.uniforms;
    // decode grids (T = 1) are evaluated once, for the whole context; those that depend on the step's end (split
    // attention: at context 4096 and position 384, 15 of 16 rows of workgroups would only start and exit) per bucket
    /** @type {FixedDispatch[]} */
    this.decodeProgram = parts.decode.map((d) => {
      const grid = d.grid(1);
      const varies = d.grid(1, 1).some((v, i) => v !== grid[i]);
      return { ...d, grid, byEnd: varies ? { of: d.grid, grids: new Map() } : null };
    });
    this.prefillProgram = parts.prefill;
    /** @type {FixedDispatch[]} */
    this.headProgram = parts.head.map((d) => ({ ...d, grid: d.grid(1), byEnd: null }));
    /**
     * Dispatches per decode step (one compute pass, one submit), per prefill pass, uniform buffers, and the kernel
     * tuning the pipelines were compiled with ('cpu' or 'gpu', and the matvec overrides: what benchmarks check).
     */
    this.stats = {
      tuning: parts.tuning,
      decodeDispatches: this.decodeProgram.length,
      prefillDispatches: this.prefillProgram.length + this.headProgram.length,
      uniformBuffers: this.uniforms.buffers.size,
    };
    // host-side staging of ids and positions (preallocated: no allocation per token)
    this.idsHost = new Uint32Array(this.passTokens);
    this.positionsHost = new Uint32Array(this.passTokens);
    /** u32 words of a token bitmask (forward's opts.mask): ceil(vocab / 32) */
    this.maskWords = argmaxMaskWords(this.config.vocab_size);
    /** the mask that allows every token, and whether state.mask holds it (written again only after a grammar's) */
    this.fullMask = new Uint32Array(this.maskWords).fill(0xffffffff);
    this.device.queue.writeBuffer(this.state.mask, 0, this.fullMask);
    this.maskIsFull = true;
    /** @type {Promise<unknown>} forward calls run one at a time (they share the run state and read-back buffers) */
    this.queue = Promise.resolve();
    /** @type {GPUCommandBuffer | null} the next decode step's commands, encoded ahead (a step encodes the next) */
    this.nextDecode = null;
    /** the largest step end (one past the position) nextDecode's grids serve */
    this.nextDecodeEnd = 0;
    this.destroyed = false;
    /**
     * KV positions each of two slots holds aside (kv-session.js keeps a conversation there): at most
     * KV_SLOT_POSITIONS, and what one buffer may hold. The slots' buffers (each [layers, 2 (k, v), KV, positions, D]
     * f16, as the cache: KV_BYTES a value) are made on the first save; 0 once that failed (no slots then).
     */
    const c = this.config;
    const perPosition = KV_BYTES * c.num_layers * 2 * c.num_kv_heads * c.head_dim;
    this.kvSlotPositions = Math.min(this.context, KV_SLOT_POSITIONS,
      Math.floor((this.device.limits?.maxBufferSize ?? 2 ** 28) / perPosition));
    /** @type {GPUBuffer[] | null} */
    this.kvSlots = null;
  }

  /**
   * Copies KV cache positions 0 .. n-1 into slot 0 or 1 (after every forward call made before: queue order).
   * @param {number} slot @param {number} n
   */
  saveKv(slot, n) {
    return this.enqueue(() => this.copyKv(true, slot, n));
  }

  /**
   * Copies slot 0 or 1's positions 0 .. n-1 back into the KV cache (before any forward call made after).
   * @param {number} slot @param {number} n
   */
  restoreKv(slot, n) {
    return this.enqueue(() => this.copyKv(false, slot, n));
  }

  /** Runs f after every call queued before (forward, KV copies): they share the run state.
   * @template T @param {() => T | Promise<T>} f @returns {Promise<T>} */
  enqueue(f) {
    const run = this.queue.then(f);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** One submit of layers x 2 x KV-heads buffer copies. @param {boolean} save @param {number} slot @param {number} n */
  async copyKv(save, slot, n) {
    if (this.destroyed) throw new ContextError('this model was destroyed: load it again');
    if (!Number.isInteger(n) || n < 0 || n > this.kvSlotPositions || (slot !== 0 && slot !== 1)) {
      throw new ContextError(`KV slot ${slot}: ${n} positions is outside 0 .. ${this.kvSlotPositions}`);
    }
    const { device, state: s } = this;
    const c = this.config;
    const P = this.kvSlotPositions, S = this.context, D = c.head_dim, KV = c.num_kv_heads;
    if (!this.kvSlots) {
      device.pushErrorScope('out-of-memory');
      const bytes = KV_BYTES * c.num_layers * 2 * KV * P * D;
      const slots = [0, 1].map((i) => device.createBuffer({ label: `kv_slot.${i}`, size: bytes,
        usage: USAGE.COPY_SRC | USAGE.COPY_DST }));
      const error = await device.popErrorScope();
      if (error) {
        for (const b of slots) b.destroy();
        this.kvSlotPositions = 0;
        throw new CapacityError(`no GPU memory for the KV slots (${2 * bytes} bytes): ${error.message}`);
      }
      this.kvSlots = slots;
    }
    const kept = this.kvSlots[slot];
    const enc = device.createCommandEncoder();
    for (let l = 0; l < c.num_layers; l++) {
      [s.kCache[l], s.vCache[l]].forEach((cache, kv) => {
        for (let h = 0; h < KV; h++) {
          // offsets and sizes in whole u32 words (copies need multiples of 4 bytes): D is a multiple of 4
          const at = KV_BYTES * h * S * D, atKept = KV_BYTES * (((l * 2 + kv) * KV + h) * P) * D;
          if (save) enc.copyBufferToBuffer(cache, at, kept, atKept, KV_BYTES * n * D);
          else enc.copyBufferToBuffer(kept, atKept, cache, at, KV_BYTES * n * D);
        }
      });
    }
    device.queue.submit([enc.finish()]);
  }

  /**
   * Runs tokens `ids` at positions pos .. pos + n - 1, filling the KV cache (model_prep/reference/forward.py `forward`).
   * n > 1 is prefill (ceil(n / passTokens) passes, one submit each); n == 1 is one decode step (one submit).
   * Returns, for the last position: `token`, the argmax of the logits among the tokens opts.mask allows (ties to the
   * lowest id; every token without a mask); `logprob`, that token's log-probability under the softmax over the
   * allowed tokens (nats, <= 0; -log(allowed count) if every allowed logit is -inf); and with opts.logits, the raw
   * logits f32[vocab] (the mask is not applied to them).
   * opts.mask: u32[maskWords], bit i % 32 of word i / 32 set = token i allowed (bits past the vocabulary are ignored);
   * null or absent = no constraint. It is copied to the GPU before the submit (no allocation per token).
   * Throws GrammarError when the mask allows no token, or has the wrong length.
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
   * @returns {Promise<{token: number, logprob: number, logits?: Float32Array}>}
   */
  async run(ids, pos, wantLogits, mask) {
    if (this.destroyed) throw new ContextError('this model was destroyed: load it again');
    const n = ids.length;
    const vocab = this.config.vocab_size;
    checkForwardArgs(ids, pos, mask, { context: this.context, vocab, maskWords: this.maskWords });
    this.writeMask(mask);
    const { device, state: s } = this;
    const queue = device.queue;
    const P = this.passTokens;
    const hiddenBytes = 4 * this.config.hidden_size;
    for (let start = 0; start < n; start += P) {
      const T = Math.min(P, n - start);
      const last = start + T === n;
      for (let t = 0; t < T; t++) {
        this.idsHost[t] = ids[start + t];
        this.positionsHost[t] = pos + start + t;
      }
      queue.writeBuffer(s.ids, 0, this.idsHost, 0, T);
      queue.writeBuffer(s.positions, 0, this.positionsHost, 0, T);
      if (n === 1 && !wantLogits) {
        queue.submit([this.nextDecode && pos < this.nextDecodeEnd ? this.nextDecode : this.encodeDecode(pos + 1)]);
        this.nextDecode = null;
        break;
      }
      const enc = device.createCommandEncoder();
      if (n === 1) {
        encode(enc, this.decodeProgram, pos + 1);
      } else {
        this.uniforms.setTokens(T);
        const pass = enc.beginComputePass();
        const end = pos + start + T; // one past the pass's last position (attention splits the positions before)
        for (const d of this.prefillProgram) {
          const [x, y, z] = d.grid(T, end);
          if (!x || !y || !z) continue; // nothing this pass (attention_prefill_combine.wgsl after a single split)
          pass.setPipeline(d.pipeline);
          pass.setBindGroup(0, d.bindGroup);
          pass.dispatchWorkgroups(x, y, z);
        }
        pass.end();
        if (last) {
          enc.copyBufferToBuffer(s.x, (T - 1) * hiddenBytes, s.xLast, 0, hiddenBytes);
          encode(enc, this.headProgram);
        }
      }
      if (last) {
        enc.copyBufferToBuffer(s.token, 0, s.tokenRead, 0, TOKEN_BYTES);
        if (wantLogits) enc.copyBufferToBuffer(s.logits, 0, s.logitsRead, 0, 4 * vocab);
      }
      queue.submit([enc.finish()]);
    }
    // the next decode step's commands (the same program, grids for the next position's bucket) are encoded while
    // the GPU runs this one
    if (n === 1 && !wantLogits && pos + 2 <= this.context) {
      this.nextDecodeEnd = endBucket(pos + 2);
      this.nextDecode = this.encodeDecode(pos + 2);
    }
    await Promise.all([s.tokenRead.mapAsync(MAP_READ_MODE), wantLogits ? s.logitsRead.mapAsync(MAP_READ_MODE) : null]);
    const out = s.tokenRead.getMappedRange(0, TOKEN_BYTES);
    const token = new Uint32Array(out)[0];
    const logprob = new Float32Array(out)[1];
    s.tokenRead.unmap();
    /** @type {Float32Array | undefined} */
    let logits;
    if (wantLogits) {
      logits = new Float32Array(s.logitsRead.getMappedRange().slice(0));
      s.logitsRead.unmap();
    }
    if (token === NO_TOKEN) {
      throw new GrammarError('no token is allowed by the grammar at this step: the grammar cannot be continued with ' +
        "this model's vocabulary, so the answer cannot be constrained (check the schema and the tokenizer)");
    }
    return logits ? { token, logprob, logits } : { token, logprob };
  }

  /**
   * Puts the step's token mask on the GPU (queue.writeBuffer, ordered before the step's submit, so the commands
   * encoded ahead stay valid): `mask`, or the full mask if the buffer holds another (once, not every token).
   * @param {Uint32Array | null} mask
   */
  writeMask(mask) {
    if (mask) {
      this.device.queue.writeBuffer(this.state.mask, 0, /** @type {Uint32Array<ArrayBuffer>} */ (mask));
      this.maskIsFull = false;
    } else if (!this.maskIsFull) {
      this.device.queue.writeBuffer(this.state.mask, 0, this.fullMask);
      this.maskIsFull = true;
    }
  }

  /**
   * One decode step's commands: the recorded program, then the token and its logprob copied out for reading back.
   * @param {number} end  one past the step's position (its grids serve every end up to endBucket(end))
   */
  encodeDecode(end) {
    const enc = this.device.createCommandEncoder();
    encode(enc, this.decodeProgram, end);
    enc.copyBufferToBuffer(this.state.token, 0, this.state.tokenRead, 0, TOKEN_BYTES);
    return enc.finish();
  }

  /** Frees every GPU buffer this model made (not the device). Pending forward calls finish first. */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.nextDecode = null;
    const free = () => {
      for (const b of this.kvSlots ?? []) b.destroy();
      for (const b of this.shards.values()) b.destroy();
      destroyRunState(this.state);
      this.uniforms.destroy();
    };
    this.queue.then(free, free);
  }
}

/** end rounded up to a multiple of END_STEP. @param {number} end */
const endBucket = (end) => Math.ceil(end / END_STEP) * END_STEP;

/**
 * The grid of decode dispatch d for a step that ends at `end` (one past its position), or for the whole context.
 * @param {FixedDispatch} d @param {number} [end]
 * @returns {number[]}
 */
export function decodeGrid(d, end) {
  if (!d.byEnd || end === undefined) return d.grid;
  const bucket = endBucket(end);
  let g = d.byEnd.grids.get(bucket);
  if (!g) d.byEnd.grids.set(bucket, (g = d.byEnd.of(1, bucket)));
  return g;
}

/**
 * One compute pass over prerecorded dispatches, each with its grid for a step ending at `end` (the whole context's
 * grids when absent).
 * @param {GPUCommandEncoder} enc
 * @param {FixedDispatch[]} program
 * @param {number} [end]
 */
function encode(enc, program, end) {
  const pass = enc.beginComputePass();
  for (const d of program) {
    const g = decodeGrid(d, end);
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(g[0], g[1], g[2]);
  }
  pass.end();
}
