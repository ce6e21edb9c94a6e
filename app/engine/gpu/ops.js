// ops.js: the forward pass's operations turned into dispatches, recorded once at load time.
//
// model.js writes the forward pass once, in terms of these operations; two recorders turn it into kernels:
// - DecodeOps (one token): RMSNorm folded into the projections (matvec main_norm), gate + up + SwiGLU in one
//   matvec main_swiglu, residual adds in matvec's epilogue; q/k/v biases, RoPE and the KV-cache write folded into
//   attention, which is split over the cache positions (attention_split + attention_combine); every Params value
//   fixed (tokens = 1). Qwen3's per-head q/k RMSNorm (config.qk_norm) is one more dispatch, qk_norm.wgsl on the
//   token's qkv row, in decode and prefill alike; other architectures dispatch nothing for it.
// - PrefillOps (T tokens, T <= P): rmsnorm.wgsl into xb, then matmul.wgsl per projection (q/k/v as one matmul over the
//   stacked weights, split by qkv_split.wgsl); Params that depend on T are rewritten per pass (Uniforms.perPass),
//   grids are computed per pass.
// Each recorded Dispatch holds its pipeline and bind group; encoding a pass allocates no GPU object.

import { PARAMS } from './params.js';
import * as grids from './grids.js';
import { kernelPlanes, vectorBinding } from './weights.js';

/** @typedef {import('./weights.js').Tensor} Tensor */
/** @typedef {import('./model.js').LayerWeights} LayerWeights */
/** @typedef {import('./state.js').RunState} RunState */
/** @typedef {import('./grids.js').Grid} Grid */
/**
 * @typedef {object} Dispatch
 * @property {string} label
 * @property {GPUComputePipeline} pipeline
 * @property {GPUBindGroup} bindGroup
 * @property {(tokens: number, end?: number) => Grid} grid   workgroups for a pass of `tokens` tokens whose last
 *   position is end - 1 (default tokens - 1: a pass from position 0); a grid with a 0 is not dispatched
 */
/**
 * An operand of a projection: the vector(s) x, and the RMSNorm weight to apply first when the norm is folded into
 * the kernel (decode) rather than already applied (prefill).
 * @typedef {{x: GPUBuffer, norm?: Tensor}} Input
 */
/**
 * @typedef {object} OpsContext
 * @property {GPUDevice} device
 * @property {import('./pipelines.js').Pipelines} pipelines
 * @property {import('./buffers.js').Uniforms} uniforms
 * @property {import('./package.js').ModelConfig} config
 * @property {number} context   KV positions per layer (the caches' capacity)
 * @property {number} passTokens  tokens per prefill pass, at most (the run state's P)
 */

/** @param {GPUBuffer | GPUBufferBinding} r @returns {GPUBufferBinding} */
const binding = (r) => ('buffer' in r ? r : { buffer: r });

class Ops {
  /** @param {OpsContext} ctx */
  constructor(ctx) {
    this.ctx = ctx;
    /** @type {Dispatch[]} */
    this.dispatches = [];
  }

  /**
   * Records one dispatch; resources are bound to bindings 0, 1, 2, ... in the kernel's order (null: a binding this
   * entry point does not use).
   * @param {string} label
   * @param {GPUComputePipeline} pipeline
   * @param {(GPUBuffer | GPUBufferBinding | null)[]} resources
   * @param {(tokens: number, end?: number) => Grid} grid
   */
  record(label, pipeline, resources, grid) {
    const bindGroup = this.ctx.device.createBindGroup({
      label,
      layout: pipeline.getBindGroupLayout(0),
      entries: resources.flatMap((r, i) => (r ? [{ binding: i, resource: binding(r) }] : [])),
    });
    this.dispatches.push({ label, pipeline, bindGroup, grid });
  }

  /**
   * A Params buffer whose fields in `perToken` are T times the given value (T = tokens of the pass).
   * @param {import('./params.js').ParamsLayout} params
   * @param {Record<string, number>} fixed
   * @param {Record<string, number>} perToken
   * @returns {GPUBuffer}
   */
  params(params, fixed, perToken) {
    throw new Error('abstract');
  }

  /**
   * x[t] = embedding row ids[t], one dispatch per row chunk of the table.
   * @param {GPUBuffer} ids  u32[T]
   * @param {Tensor} table   [vocab, hidden]
   * @param {GPUBuffer} out  f32[T, hidden]
   */
  embed(ids, table, out) {
    const k = this.ctx.pipelines.embed(table.storage, this.ctx.config.embedding_scale ?? 1);
    for (const ch of table.chunks) {
      const p = this.params(PARAMS[k.shader], { row_start: ch.rowStart, rows: ch.rows, cols: table.cols }, { tokens: 1 });
      this.record(`embed ${table.name}@${ch.rowStart}`, k.pipeline, [ids, ...kernelPlanes(table.storage, ch.planes), out, p],
        (T) => k.grid(table.cols, T));
    }
  }

  /**
   * y[t] += b for every token (qwen2's q/k/v biases).
   * @param {Tensor} b    [n] f32
   * @param {GPUBuffer} y f32[T, n]
   */
  bias(b, y) {
    const wg = this.ctx.pipelines.tuning.bias.WG;
    const p = this.params(PARAMS['bias.wgsl'], { n: b.cols }, { tokens: 1 });
    this.record(`bias ${b.name}`, this.ctx.pipelines.get('bias.wgsl', 'main', { WG: wg }), [vectorBinding(b), y, p],
      (T) => grids.elementwiseGrid(T * b.cols, wg));
  }

  /**
   * Qwen3's per-head RMSNorm, in place (qk_norm.wgsl): in each of the T rows of x (`stride` values apart), the first
   * qHeads heads with wq, heads qHeads .. heads - 1 with wk; the rest of the row is left alone.
   * @param {Tensor} wq       [D] f32
   * @param {Tensor} wk       [D] f32
   * @param {GPUBuffer} x     f32[T, stride]
   * @param {number} heads
   * @param {number} qHeads
   * @param {number} stride
   * @param {string} label
   */
  qkNorm(wq, wk, x, heads, qHeads, stride, label) {
    const c = this.ctx.config;
    const wg = this.ctx.pipelines.tuning.qkNorm.WG;
    const p = this.params(PARAMS['qk_norm.wgsl'],
      { heads, q_heads: qHeads, head_dim: c.head_dim, stride, eps: c.rms_norm_eps }, { tokens: 1 });
    this.record(`qk norm ${label}`, this.ctx.pipelines.get('qk_norm.wgsl', 'main', { WG: wg }),
      [vectorBinding(wq), vectorBinding(wk), x, p], (T) => grids.qkNormGrid(heads, T));
  }

  /**
   * RoPE on q (in place) and k, and the new k, v written into this layer's cache at positions[t]; the rotation comes
   * from the (cos, sin) table of the run state (rope_table.wgsl).
   * @param {GPUBuffer} positions  u32[T]
   * @param {GPUBuffer} table      f32[S, D/2, 2]
   * @param {GPUBuffer} q          f32[T, H, D]
   * @param {GPUBuffer} k          f32[T, KV, D]
   * @param {GPUBuffer} v          f32[T, KV, D]
   * @param {GPUBuffer} kCache     u32[KV, S, D/2]  f16 pairs (kv_f16.wgsl)
   * @param {GPUBuffer} vCache     u32[KV, S, D/2]
   * @param {string} label
   */
  rope(positions, table, q, k, v, kCache, vCache, label) { // table: the layer's (sliding or full)
    const c = this.ctx.config;
    const wg = this.ctx.pipelines.tuning.rope.WG;
    const pipeline = this.ctx.pipelines.get('rope_table.wgsl', 'main', { WG: wg, HALF: c.rope_layout === 'half' ? 1 : 0 });
    const p = this.params(PARAMS['rope_table.wgsl'], {
      num_heads: c.num_heads, num_kv_heads: c.num_kv_heads, head_dim: c.head_dim, capacity: this.ctx.context,
    }, { tokens: 1 });
    this.record(`rope ${label}`, pipeline, [positions, table, k, v, q, kCache, vCache, p],
      (T) => grids.ropeGrid(T, c.num_heads, c.head_dim, wg));
  }

  /**
   * Causal GQA over the cache: out[t, h] = softmax(q[t, h] . K[0..pos_t] / sqrt(D)) V.
   * @param {GPUBuffer} positions u32[T]
   * @param {GPUBuffer} q         f32[T, H, D]
   * @param {GPUBuffer} kCache    u32[KV, S, D/2]  f16 pairs (kv_f16.wgsl)
   * @param {GPUBuffer} vCache    u32[KV, S, D/2]
   * @param {GPUBuffer} out       f32[T, H, D]
   * @param {string} label
   * @param {number} [window]     sliding window of the layer (keys pos - window + 1 .. pos), 0 = none
   */
  attention(positions, q, kCache, vCache, out, label, window = 0) {
    const c = this.ctx.config;
    const pipeline = this.ctx.pipelines.get('attention.wgsl', 'main',
      { WG: this.ctx.pipelines.tuning.attention.WG, WINDOW: window });
    const p = this.ctx.uniforms.fixed(PARAMS['attention.wgsl'], {
      num_heads: c.num_heads, num_kv_heads: c.num_kv_heads, head_dim: c.head_dim, capacity: this.ctx.context,
      scale: attentionScale(c),
    });
    this.record(`attention ${label}`, pipeline, [positions, q, kCache, vCache, out, p],
      (T) => grids.attentionGrid(c.num_heads, T));
  }

  /**
   * out = (k, logprob): k = the largest logit among the tokens `mask` allows (ties to the lowest id; 0xFFFFFFFF if
   * none is allowed), logprob its log-probability under the softmax over the allowed tokens (f32 bits). A state per
   * block of logits over the GPU (argmax.wgsl main_blocks), then the blocks merged (main_pairs).
   * @param {GPUBuffer} logits f32[vocab]
   * @param {GPUBuffer} mask   u32[ceil(vocab / 32)] bit i % 32 of word i / 32 set = token i allowed
   * @param {GPUBuffer} states u32[blocks, 4]
   * @param {GPUBuffer} out    u32[2]
   */
  argmax(logits, mask, states, out) {
    const { WG, ITEMS } = this.ctx.pipelines.tuning.argmax;
    const n = this.ctx.config.vocab_size;
    const blocks = grids.argmaxBlocks(n, WG, ITEMS);
    const pb = this.ctx.uniforms.fixed(PARAMS['argmax.wgsl'], { n });
    this.record('argmax blocks', this.ctx.pipelines.get('argmax.wgsl', 'main_blocks', { WG, ITEMS }),
      [logits, mask, states, pb], () => [blocks, 1, 1]);
    const pp = this.ctx.uniforms.fixed(PARAMS['argmax.wgsl'], { n: blocks });
    // binding 1 (the mask) is main_blocks' only
    this.record('argmax', this.ctx.pipelines.get('argmax.wgsl', 'main_pairs', { WG }), [states, null, out, pp],
      grids.argmaxGrid);
  }

  /**
   * y = silu(gate) * up (gelu_tanh(gate) * up with config.hidden_act gelu_tanh), elementwise over T * n values.
   * @param {GPUBuffer} gate f32[T, n]
   * @param {GPUBuffer} up   f32[T, n]
   * @param {GPUBuffer} y    f32[T, n]
   * @param {number} n
   */
  swigluElementwise(gate, up, y, n) {
    const wg = this.ctx.pipelines.tuning.swiglu.WG;
    const p = this.params(PARAMS['swiglu.wgsl'], {}, { n });
    const gelu = this.ctx.config.hidden_act === 'gelu_tanh' ? 1 : 0;
    this.record('swiglu', this.ctx.pipelines.get('swiglu.wgsl', 'main', { WG: wg, GELU: gelu }), [gate, up, y, p],
      (T) => grids.elementwiseGrid(T * n, wg));
  }

  /**
   * x += rmsnorm(t) * w, row by row (gemma3's post-attention and post-MLP norms: rmsnorm.wgsl ACCUMULATE).
   * @param {GPUBuffer} t  f32[T, hidden] the block's output
   * @param {Tensor} w     [hidden] f32
   * @param {GPUBuffer} x  f32[T, hidden] the residual stream
   */
  postNorm(t, w, x) {
    const c = this.ctx.config;
    const wg = this.ctx.pipelines.tuning.rmsnorm.WG;
    const p = this.ctx.uniforms.fixed(PARAMS['rmsnorm.wgsl'], { n: w.cols, eps: c.rms_norm_eps });
    this.record(`post norm ${w.name}`, this.ctx.pipelines.get('rmsnorm.wgsl', 'main', { WG: wg, ACCUMULATE: 1 }),
      [t, vectorBinding(w), x, p], grids.rmsnormGrid);
  }
}

/**
 * Layer i's attention kind: its sliding window (0 = full attention) and which RoPE table it rotates with (gemma3's
 * "sliding" layers: config.sliding_window, and s.ropeTableSliding).
 * @param {import('./package.js').ModelConfig} c
 * @param {RunState} s
 * @param {number} i
 */
function layerKind(c, s, i) {
  const sliding = c.layer_types?.[i] === 'sliding';
  return { window: sliding ? c.sliding_window ?? 0 : 0, table: sliding ? s.ropeTableSliding : s.ropeTable };
}

/** The score scale: config.attention_scale (gemma3) or 1 / sqrt(head_dim). @param {import('./package.js').ModelConfig} c */
function attentionScale(c) {
  return c.attention_scale ?? 1 / Math.sqrt(c.head_dim);
}

/** One token per pass: matvec kernels, norms folded in, every Params value fixed. */
export class DecodeOps extends Ops {
  /** @type {Ops['params']} */
  params(params, fixed, perToken) {
    return this.ctx.uniforms.fixed(params, { ...fixed, ...perToken }); // T = 1
  }

  /**
   * Decode folds the norm into the next projections: nothing is dispatched here.
   * @param {GPUBuffer} x     f32[hidden]
   * @param {Tensor} w        [hidden] f32
   * @param {GPUBuffer} _out  unused (prefill writes the normed rows there)
   * @returns {Input}
   */
  rmsnorm(x, w, _out) {
    return { x, norm: w };
  }

  /**
   * y = W rmsnorm(x) (input with a norm) or y (+)= W x, one matvec per row chunk of W.
   * @param {Input} input
   * @param {Tensor} w          [rows, cols]
   * @param {GPUBuffer} y       f32[rows]
   * @param {{accumulate?: boolean, rowBase?: number}} [opts]  accumulate: y += W x (the residual add; inputs
   *   without a norm only); rowBase: write rows at y[rowBase ..] (default 0)
   */
  linear(input, w, y, opts = {}) {
    const c = this.ctx.config;
    const k = this.ctx.pipelines.matvec(w.storage, input.norm ? 'main_norm' : 'main', !!opts.accumulate, w.cols);
    if (input.norm && opts.accumulate) throw new Error('matvec main_norm cannot accumulate');
    const normW = input.norm ? [vectorBinding(input.norm)] : [];
    const base = opts.rowBase ?? 0;
    for (const ch of w.chunks) {
      const p = this.params(PARAMS['matvec.wgsl'],
        { rows: ch.rows, cols: w.cols, row_offset: base + ch.rowStart, eps: c.rms_norm_eps }, {});
      const grid = k.grid(ch.rows);
      this.record(`matvec ${w.name}@${ch.rowStart}`, k.pipeline,
        [...kernelPlanes(w.storage, ch.planes), input.x, ...normW, y, p], () => grid);
    }
  }

  /**
   * The token's q, k, v projections, one after another in s.qkv [H + 2 KV, D]: one matvec over the stacked weights
   * (lw.wqkv), else three; the biases are left to attend(); with qk_norm, its heads of q and k normed in place.
   * @param {Input} input  x with the attention norm
   * @param {LayerWeights} lw
   * @param {RunState} s
   * @param {number} _i  layer (unused: decode adds the biases in attention)
   */
  projectQKV(input, lw, s, _i) {
    const c = this.ctx.config;
    if (lw.wqkv) {
      this.linear(input, lw.wqkv, s.qkv); // one matvec over the stacked weights
    } else {
      this.linear(input, lw.wq, s.qkv);
      this.linear(input, lw.wk, s.qkv, { rowBase: c.num_heads * c.head_dim });
      this.linear(input, lw.wv, s.qkv, { rowBase: (c.num_heads + c.num_kv_heads) * c.head_dim });
    }
    if (lw.qNorm && lw.kNorm) {
      this.qkNorm(lw.qNorm, lw.kNorm, s.qkv, c.num_heads + c.num_kv_heads, c.num_heads,
        (c.num_heads + 2 * c.num_kv_heads) * c.head_dim, lw.wq.name);
    }
  }

  /**
   * Layer i's attention for the token: biases and RoPE on q, k, v (s.qkv + s.qkvBias[i]), k and v into the cache,
   * attention per split of the cache positions (attention_split.wgsl), then the splits merged into s.att.
   * @param {RunState} s
   * @param {number} i  layer
   * @param {string} label
   */
  attend(s, i, label) {
    const c = this.ctx.config;
    const t = this.ctx.pipelines.tuning;
    const S = this.ctx.context;
    const shape = grids.attentionSplitShape(c.head_dim, c.num_heads, c.num_kv_heads, t.attentionSplit);
    const { SPLIT } = shape;
    const splits = grids.attentionSplits(S, SPLIT);
    const { window, table } = layerKind(c, s, i);
    const split = this.ctx.pipelines.get('attention_split.wgsl', 'main',
      { ...shape, HALF: c.rope_layout === 'half' ? 1 : 0, WINDOW: window, EARLY: t.attentionSplit.EARLY ?? 0 });
    const ps = this.ctx.uniforms.fixed(PARAMS['attention_split.wgsl'], {
      num_heads: c.num_heads, num_kv_heads: c.num_kv_heads, head_dim: c.head_dim, capacity: S, splits,
      scale: attentionScale(c),
    });
    // rows of workgroups for the splits up to the step's end (one past its position; the whole cache when not given)
    this.record(`attention split ${label}`, split,
      [s.positions, table, s.qkv, s.qkvBias[i], s.kCache[i], s.vCache[i], s.attnPart, ps],
      (_T, end) => grids.attentionSplitGrid(c.num_heads, Math.min(S, end ?? S), shape));
    const CG = t.attentionCombine.CG ?? 1; // workgroups per head: the grid depends on it, so it is passed explicitly
    const combine = this.ctx.pipelines.get('attention_combine.wgsl', 'main', { ...t.attentionCombine, CG });
    const pc = this.ctx.uniforms.fixed(PARAMS['attention_combine.wgsl'], {
      num_heads: c.num_heads, head_dim: c.head_dim, capacity: S, splits, split_positions: SPLIT,
    });
    const combineGrid = grids.attentionCombineGrid(c.num_heads, CG);
    this.record(`attention combine ${label}`, combine, [s.positions, s.attnPart, s.att, pc], () => combineGrid);
  }

  /**
   * y = silu(Wg x') * (Wu x'), x' = rmsnorm(x) * norm: one fused matvec main_swiglu per chunk when gate and up share
   * storage (q4, q8, q4k or f32: q5k and q6k would bind more storage buffers than WebGPU's default 8) and row chunks;
   * otherwise two matvecs and swiglu.wgsl.
   * @param {Input} input     with its norm
   * @param {Tensor} gate     [intermediate, hidden]
   * @param {Tensor} up       [intermediate, hidden]
   * @param {GPUBuffer} y       f32[intermediate]
   * @param {GPUBuffer} gateOut f32[intermediate] (the unfused path only)
   * @param {GPUBuffer} upOut   f32[intermediate] (the unfused path only)
   */
  ffnGateUp(input, gate, up, y, gateOut, upOut) {
    const c = this.ctx.config;
    const same = gate.storage === up.storage && ['q4', 'q8', 'q4k', 'f32'].includes(gate.storage) &&
      gate.chunks.length === up.chunks.length &&
      gate.chunks.every((ch, i) => ch.rowStart === up.chunks[i].rowStart && ch.rows === up.chunks[i].rows);
    if (!input.norm || !same) {
      this.linear(input, gate, gateOut);
      this.linear(input, up, upOut);
      this.swigluElementwise(gateOut, upOut, y, gate.rows);
      return;
    }
    const k = this.ctx.pipelines.matvec(gate.storage, 'main_swiglu', false, gate.cols, c.hidden_act === 'gelu_tanh');
    gate.chunks.forEach((ch, i) => {
      const p = this.params(PARAMS['matvec.wgsl'], { rows: ch.rows, cols: gate.cols, row_offset: ch.rowStart, eps: c.rms_norm_eps }, {});
      const grid = k.grid(ch.rows);
      const norm = /** @type {Tensor} */ (input.norm);
      // q4k: matvec_kq.wgsl's bindings 1 and 6 (qhigh) are unused by main_swiglu
      const [gp, upp] = [ch.planes, up.chunks[i].planes].map((pl) => (gate.storage === 'q4k' ? [pl[0], null, pl[1]] : pl));
      this.record(`matvec swiglu ${gate.name}@${ch.rowStart}`, k.pipeline,
        [...gp, input.x, vectorBinding(norm), ...upp, y, p], () => grid);
    });
  }
}

/** T tokens per pass: rmsnorm.wgsl, then matmul per projection; Params that depend on T rewritten per pass. */
export class PrefillOps extends Ops {
  /** @type {Ops['params']} */
  params(params, fixed, perToken) {
    return Object.keys(perToken).length ? this.ctx.uniforms.perPass(params, fixed, perToken)
      : this.ctx.uniforms.fixed(params, fixed);
  }

  /**
   * out[t] = rmsnorm(x[t]) * w.
   * @param {GPUBuffer} x    f32[T, hidden]
   * @param {Tensor} w       [hidden] f32
   * @param {GPUBuffer} out  f32[T, hidden]
   * @returns {Input}
   */
  rmsnorm(x, w, out) {
    const c = this.ctx.config;
    const wg = this.ctx.pipelines.tuning.rmsnorm.WG;
    const p = this.ctx.uniforms.fixed(PARAMS['rmsnorm.wgsl'], { n: w.cols, eps: c.rms_norm_eps });
    this.record(`rmsnorm ${w.name}`, this.ctx.pipelines.get('rmsnorm.wgsl', 'main', { WG: wg }), [x, vectorBinding(w), out, p],
      grids.rmsnormGrid);
    return { x: out };
  }

  /**
   * Y (+)= X W^T, one matmul per row chunk of W.
   * @param {Input} input       X f32[T, cols] (already normed)
   * @param {Tensor} w          [rows, cols]
   * @param {GPUBuffer} y       f32[T, rows]
   * @param {{accumulate?: boolean}} [opts]
   */
  linear(input, w, y, opts = {}) {
    if (input.norm) throw new Error('prefill applies norms with rmsnorm.wgsl first');
    const k = this.ctx.pipelines.matmul(w.storage, !!opts.accumulate, w.rows);
    for (const ch of w.chunks) {
      const p = this.params(PARAMS['matmul.wgsl'], { rows: ch.rows, cols: w.cols, row_offset: ch.rowStart, y_stride: w.rows },
        { tokens: 1 });
      this.record(`matmul ${w.name}@${ch.rowStart}`, k.pipeline, [...kernelPlanes(w.storage, ch.planes), input.x, y, p],
        (T) => k.grid(ch.rows, T));
    }
  }

  /**
   * Q, K, V = X Wq^T (+ bq), X Wk^T (+ bk), X Wv^T (+ bv) into s.q, s.k, s.v: one matmul over the stacked weights
   * (lw.wqkv) into s.hGate (free until the MLP) as [T, (H + 2 KV) D], then qkv_split.wgsl adds the biases (s.qkvBias
   * of the layer, zeros without) and writes q, k, v; without a stacked copy, three matmuls and bias.wgsl. With
   * qk_norm (no biases then), qk_norm.wgsl norms the heads of q and k first: on the stacked rows, else on s.q and s.k.
   * @param {Input} input  X f32[T, hidden] (already normed)
   * @param {LayerWeights} lw
   * @param {RunState} s
   * @param {number} i  layer
   */
  projectQKV(input, lw, s, i) {
    const c = this.ctx.config;
    if (lw.wqkv) {
      this.linear(input, lw.wqkv, s.hGate);
      const qw = c.num_heads * c.head_dim, kvw = c.num_kv_heads * c.head_dim;
      if (lw.qNorm && lw.kNorm) {
        this.qkNorm(lw.qNorm, lw.kNorm, s.hGate, c.num_heads + c.num_kv_heads, c.num_heads, qw + 2 * kvw, lw.wq.name);
      }
      const wg = this.ctx.pipelines.tuning.qkvSplit.WG;
      const p = this.params(PARAMS['qkv_split.wgsl'], { q_width: qw, kv_width: kvw }, { tokens: 1 });
      this.record(`qkv split ${lw.wqkv.name}`, this.ctx.pipelines.get('qkv_split.wgsl', 'main', { WG: wg }),
        [s.hGate, s.qkvBias[i], s.q, s.k, s.v, p], (T) => grids.elementwiseGrid(T * (qw + 2 * kvw), wg));
      return;
    }
    this.linear(input, lw.wq, s.q);
    this.linear(input, lw.wk, s.k);
    this.linear(input, lw.wv, s.v);
    if (lw.qNorm && lw.kNorm) {
      this.qkNorm(lw.qNorm, lw.qNorm, s.q, c.num_heads, c.num_heads, c.num_heads * c.head_dim, lw.wq.name);
      this.qkNorm(lw.kNorm, lw.kNorm, s.k, c.num_kv_heads, 0, c.num_kv_heads * c.head_dim, lw.wk.name);
    }
    if (lw.bq && lw.bk && lw.bv) {
      this.bias(lw.bq, s.q);
      this.bias(lw.bk, s.k);
      this.bias(lw.bv, s.v);
    }
  }

  /**
   * Layer i's causal attention for the pass: RoPE on q and k, k and v into the cache (rope_table.wgsl), then
   * attention_prefill.wgsl (blocks of queries against blocks of the cache) into s.att; attention.wgsl (one workgroup
   * per query and head) for heads larger than 128. A pass whose positions reach past SPLIT splits them over
   * workgroups (grids.attentionPrefillSplits, from the pass's last position), so a short pass deep in the cache
   * still fills the GPU; attention_prefill_combine.wgsl then merges the splits into s.att. A pass within SPLIT
   * positions takes one split, written by attention_prefill.wgsl itself, and dispatches no combine.
   * @param {RunState} s
   * @param {number} i  layer
   * @param {string} label
   */
  attend(s, i, label) {
    const c = this.ctx.config;
    const { window, table } = layerKind(c, s, i);
    this.rope(s.positions, table, s.q, s.k, s.v, s.kCache[i], s.vCache[i], label);
    const { BQ, BK, SPLIT } = this.ctx.pipelines.tuning.attentionPrefill;
    if (!grids.attentionPrefillFits(c.head_dim, BK)) { // beyond attention_prefill.wgsl's registers and tiles
      this.attention(s.positions, s.q, s.kCache[i], s.vCache[i], s.att, label, window);
      return;
    }
    const { context, passTokens } = this.ctx;
    const splits = grids.attentionPrefillMaxSplits(c.num_heads, c.head_dim, context, passTokens, SPLIT); // at most
    const passSplits = (/** @type {number} */ T, /** @type {number} */ end = T) =>
      grids.attentionPrefillSplits(end, SPLIT, splits);
    const p = this.params(PARAMS['attention_prefill.wgsl'], {
      num_heads: c.num_heads, num_kv_heads: c.num_kv_heads, head_dim: c.head_dim, capacity: this.ctx.context, splits,
      scale: attentionScale(c),
    }, { tokens: 1 });
    this.record(`attention prefill ${label}`,
      this.ctx.pipelines.get('attention_prefill.wgsl', 'main', { BQ, BK, SPLIT, WINDOW: window }),
      [s.positions, s.q, s.kCache[i], s.vCache[i], s.att, s.attnPrefillPart, p],
      (T, end) => grids.attentionPrefillGrid(c.num_heads, T, BQ, passSplits(T, end)));
    if (splits === 1) return;
    const wg = this.ctx.pipelines.tuning.attentionPrefillCombine.WG;
    const pc = this.params(PARAMS['attention_prefill_combine.wgsl'], {
      num_heads: c.num_heads, head_dim: c.head_dim, splits, split_positions: SPLIT,
    }, { tokens: 1 });
    this.record(`attention prefill combine ${label}`,
      this.ctx.pipelines.get('attention_prefill_combine.wgsl', 'main', { WG: wg }),
      [s.positions, s.attnPrefillPart, s.att, pc],
      (T, end) => grids.attentionPrefillCombineGrid(T, c.num_heads, c.head_dim, wg, passSplits(T, end)));
  }

  /**
   * y = silu(X Wg^T) * (X Wu^T): two matmuls and swiglu.wgsl.
   * @param {Input} input       X f32[T, hidden] (already normed)
   * @param {Tensor} gate
   * @param {Tensor} up
   * @param {GPUBuffer} y       f32[T, intermediate]
   * @param {GPUBuffer} gateOut f32[T, intermediate]
   * @param {GPUBuffer} upOut   f32[T, intermediate]
   */
  ffnGateUp(input, gate, up, y, gateOut, upOut) {
    this.linear(input, gate, gateOut);
    this.linear(input, up, upOut);
    this.swigluElementwise(gateOut, upOut, y, gate.rows);
  }
}
