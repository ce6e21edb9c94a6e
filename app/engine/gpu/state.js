// state.js: the run state, as in llama2.c's RunState: every activation and the KV cache, sized once from the
// config, the context (S positions of KV cache) and the tokens per prefill pass (P). Nothing is allocated later.
// Decode uses row 0 of each [P, ...] buffer. probe.js sizes the same buffers through runStateBytes. A few sizes
// depend on the kernels' tuning (attention_split.wgsl's positions per split, argmax.wgsl's blocks): pass the tuning
// the pipelines are compiled with.

import { ACTIVATION, USAGE, createBuffer } from './buffers.js';
import {
  argmaxBlocks, argmaxMaskWords, attentionPrefillFits, attentionPrefillMaxSplits, attentionPrefillPartBytes,
  attentionSplitShape,
} from './grids.js';
import { ropeInvFreq, ropeScale } from './rope.js';

/** KV positions each of a model's two KV slots keeps aside, at most (../kv-session.js; gpu/model.js, cpu/model.js):
 * a long system prompt with a schema. */
export const KV_SLOT_POSITIONS = 1024;

/** Bytes per cached key or value: the K and V caches (and the KV slots) hold f16, two per u32
 * (webgpu_shaders/kv_f16.wgsl), half of f32's bytes. */
export const KV_BYTES = 2;

/** @typedef {import('./pipelines.js').Tuning} Tuning */

/**
 * Bytes of each run-state buffer (f32 and u32 are 4 bytes). Shapes: H = query heads, KV = key/value heads,
 * D = head_dim, S = context positions, P = tokens per prefill pass.
 * @param {import('./package.js').ModelConfig} c
 * @param {number} S
 * @param {number} P
 * @param {Tuning} tuning  the pipelines' (Pipelines.tuning)
 */
export function runStateSizes(c, S, P, tuning) {
  const H = c.num_heads, KV = c.num_kv_heads, D = c.head_dim;
  // decode attention's splits per head (attention_split.wgsl)
  const splits = Math.ceil(S / attentionSplitShape(D, H, KV, tuning.attentionSplit).SPLIT);
  // prefill attention's splits at most (attention_prefill.wgsl; 1: none, and a 16-byte placeholder buffer)
  const prefillSplits = attentionPrefillFits(D, tuning.attentionPrefill.BK)
    ? attentionPrefillMaxSplits(H, D, S, P, tuning.attentionPrefill.SPLIT) : 1;
  return {
    ids: 4 * P, //                               u32[P]              token ids of the pass (host-written)
    positions: 4 * P, //                         u32[P]              their positions (host-written)
    x: 4 * P * c.hidden_size, //                 f32[P, hidden]      residual stream
    xb: 4 * P * c.hidden_size, //                f32[P, hidden]      rmsnorm(x) (prefill; decode folds the norm)
    xLast: 4 * c.hidden_size, //                 f32[hidden]         the pass's last row of x (prefill head input)
    q: 4 * P * H * D, //                         f32[P, H, D]        queries (rotated in place)
    k: 4 * P * KV * D, //                        f32[P, KV, D]       new keys, before RoPE
    v: 4 * P * KV * D, //                        f32[P, KV, D]       new values
    qkv: 4 * (H + 2 * KV) * D, //               f32[H+2KV, D]       decode: q, k, v of the token (before bias, RoPE)
    attnPart: 16 * H * splits * (D / 4 + 1), // f32[H, splits, D+4] decode attention per split: o, then (m, l, 0, 0)
    // f32[P, H, prefillSplits, D+4] prefill attention per split of the cache positions: o, then (m, l, 0, 0)
    attnPrefillPart: attentionPrefillPartBytes(P, H, D, prefillSplits),
    att: 4 * P * H * D, //                       f32[P, H, D]        attention output
    hb: 4 * P * c.intermediate_size, //          f32[P, intermediate] silu(gate) * up, the input of ffn_down
    hGate: 4 * P * Math.max(c.intermediate_size, (H + 2 * KV) * D), // f32[P, intermediate] gate projection
    //                                                                 (prefill; decode fuses it); before the MLP, the
    //                                                                 stacked q/k/v of the pass [P, H+2KV, D]
    hUp: 4 * P * c.intermediate_size, //         f32[P, intermediate] up projection (prefill; decode fuses it)
    logits: 4 * c.vocab_size, //                 f32[vocab]          last position's logits
    mask: 4 * argmaxMaskWords(c.vocab_size), //  u32[ceil(vocab/32)] tokens the argmax may pick (bit i % 32 of word
    //                                                                 i / 32; host-written, all ones = any token)
    argmaxStates: 16 * argmaxBlocks(c.vocab_size, tuning.argmax.WG, tuning.argmax.ITEMS), // u32[blocks, 4] per block
    //                                                                 of logits: f32 bits of its best allowed logit
    //                                                                 and of the softmax sum of the others, index
    token: 8, //                                 u32[2]              masked argmax(logits), f32 bits of its logprob
    ropeTable: 4 * S * D, //                     f32[S, D/2, 2]      (cos, sin) of pos * theta^(-2i/D), set at load
    // f32[S, D/2, 2] the "sliding" layers' table (gemma3's rope_theta_sliding); without one, ropeTable serves them
    ropeTableSliding: c.rope_theta_sliding ? 4 * S * D : 0,
    kCacheLayer: KV_BYTES * KV * S * D, //       u32[KV, S, D/2]     keys of one layer, rotated, f16 pairs
    //                                                                 (webgpu_shaders/kv_f16.wgsl) (x num_layers)
    vCacheLayer: KV_BYTES * KV * S * D, //       u32[KV, S, D/2]     values of one layer, f16 pairs (x num_layers)
    qkvBiasLayer: 4 * (H + 2 * KV) * D, //       f32[H+2KV, D]       q, k, v biases of one layer (x num_layers;
    //                                                                 zeros without biases), as qkv
  };
}

/**
 * Total bytes of the run state, and the largest single buffer (each is bound whole, so it must fit a binding).
 * @param {import('./package.js').ModelConfig} c
 * @param {number} S
 * @param {number} P
 * @param {Tuning} tuning
 */
export function runStateBytes(c, S, P, tuning) {
  const s = runStateSizes(c, S, P, tuning);
  const kv = (s.kCacheLayer + s.vCacheLayer) * c.num_layers;
  const other = Object.entries(s).filter(([k]) => !k.endsWith('CacheLayer')).reduce((a, [, v]) => a + v, 0) +
    s.qkvBiasLayer * (c.num_layers - 1);
  const readback = s.token + s.logits; // the mappable copies of token and logits
  return { kvCache: kv, activations: other + readback, largest: Math.max(...Object.values(s)) };
}

/**
 * @typedef {object} RunState  one GPU buffer per entry of runStateSizes; kCache / vCache one per layer
 * @property {GPUBuffer} ids
 * @property {GPUBuffer} positions
 * @property {GPUBuffer} x
 * @property {GPUBuffer} xb
 * @property {GPUBuffer} xLast
 * @property {GPUBuffer} q
 * @property {GPUBuffer} k
 * @property {GPUBuffer} v
 * @property {GPUBuffer} qkv
 * @property {GPUBuffer} attnPart
 * @property {GPUBuffer} attnPrefillPart
 * @property {GPUBuffer} att
 * @property {GPUBuffer} hb
 * @property {GPUBuffer} hGate
 * @property {GPUBuffer} hUp
 * @property {GPUBuffer} logits
 * @property {GPUBuffer} mask
 * @property {GPUBuffer} argmaxStates
 * @property {GPUBuffer} token
 * @property {GPUBuffer} ropeTable
 * @property {GPUBuffer} ropeTableSliding  the "sliding" layers' table (the same buffer as ropeTable without one)
 * @property {GPUBuffer[]} kCache
 * @property {GPUBuffer[]} vCache
 * @property {GPUBuffer[]} qkvBias
 * @property {GPUBuffer} tokenRead    u32[2] mappable copy of token (the 8 bytes read back per step)
 * @property {GPUBuffer} logitsRead   f32[vocab] mappable copy of logits (read only when asked for)
 */

/**
 * @param {GPUDevice} device
 * @param {import('./package.js').ModelConfig} c
 * @param {number} S  context positions
 * @param {number} P  tokens per prefill pass
 * @param {Tuning} tuning  the pipelines' (Pipelines.tuning)
 * @returns {RunState}
 */
export function allocRunState(device, c, S, P, tuning) {
  const s = runStateSizes(c, S, P, tuning);
  const buf = (/** @type {string} */ name, /** @type {number} */ bytes) => createBuffer(device, name, bytes, ACTIVATION);
  const layers = Array.from({ length: c.num_layers }, (_, i) => i);
  const ropeTable = buf('rope table', s.ropeTable);
  return {
    ids: buf('ids', s.ids),
    positions: buf('positions', s.positions),
    x: buf('x', s.x),
    xb: buf('xb', s.xb),
    xLast: buf('xLast', s.xLast),
    q: buf('q', s.q),
    k: buf('k', s.k),
    v: buf('v', s.v),
    qkv: buf('qkv', s.qkv),
    attnPart: buf('attention splits', s.attnPart),
    attnPrefillPart: buf('prefill attention splits', s.attnPrefillPart),
    att: buf('att', s.att),
    hb: buf('hb', s.hb),
    hGate: buf('hGate', s.hGate),
    hUp: buf('hUp', s.hUp),
    logits: buf('logits', s.logits),
    mask: buf('token mask', s.mask),
    argmaxStates: buf('argmax states', s.argmaxStates),
    token: buf('token', s.token),
    ropeTable,
    ropeTableSliding: s.ropeTableSliding ? buf('rope table (sliding layers)', s.ropeTableSliding) : ropeTable,
    kCache: layers.map((i) => buf(`k_cache.${i}`, s.kCacheLayer)),
    vCache: layers.map((i) => buf(`v_cache.${i}`, s.vCacheLayer)),
    qkvBias: layers.map((i) => buf(`qkv_bias.${i}`, s.qkvBiasLayer)),
    tokenRead: createBuffer(device, 'token (read back)', s.token, USAGE.MAP_READ | USAGE.COPY_DST),
    logitsRead: createBuffer(device, 'logits (read back)', s.logits, USAGE.MAP_READ | USAGE.COPY_DST),
  };
}

/**
 * The RoPE table, computed as model_prep/reference/forward.py RunState computes cos and sin: angles in float64 (JS numbers),
 * rounded to f32 once. rope_table.wgsl reads it, so the GPU rotates with exactly the reference's values (WGSL's
 * own sin / cos promise only 2^-11 absolute error; SwiftShader's are ~2e-4 off).
 * @param {GPUDevice} device
 * @param {RunState} s
 * @param {import('./package.js').ModelConfig} c
 * @param {number} S  context positions
 */
export function writeRopeTable(device, s, c, S) {
  device.queue.writeBuffer(s.ropeTable, 0, ropeCosSin(c, S));
  if (c.rope_theta_sliding && s.ropeTableSliding !== s.ropeTable) {
    // gemma3's sliding layers: plain RoPE of base rope_theta_sliding (no frequency factors, no attention factor)
    const plain = { rope_theta: c.rope_theta_sliding, head_dim: c.head_dim };
    device.queue.writeBuffer(s.ropeTableSliding, 0, ropeCosSin(plain, S));
  }
}

/**
 * [S, D/2, (cos, sin)] f32 of the RoPE angles of config c (its rope_theta, rope_freq_factors, rope_attn_factor).
 * @param {{rope_theta: number, head_dim: number, rope_freq_factors?: number[], rope_attn_factor?: number}} c
 * @param {number} S
 */
function ropeCosSin(c, S) {
  const half = c.head_dim / 2;
  const table = new Float32Array(S * half * 2); // [S, D/2, (cos, sin)]
  const scale = ropeScale(c); // config.rope_attn_factor (phi3's longrope) or 1
  for (let i = 0; i < half; i++) {
    const invFreq = ropeInvFreq(c)[i]; // ./rope.js: 1 / theta ** (2i / D), divided by config.rope_freq_factors
    for (let p = 0; p < S; p++) {
      const angle = p * invFreq;
      table[(p * half + i) * 2] = Math.cos(angle) * scale;
      table[(p * half + i) * 2 + 1] = Math.sin(angle) * scale;
    }
  }
  return table;
}

/** @param {RunState} s */
export function destroyRunState(s) {
  for (const v of Object.values(s)) {
    for (const b of Array.isArray(v) ? v : [v]) b.destroy();
  }
}
