// probe.js: can this device run this package? One call before anything is downloaded into GPU memory.
//
// probe(gpu, manifest) finds an adapter and checks the package against its limits: every plane must fit one
// storage binding, every shard one buffer, every run-state buffer (activations, one layer's KV cache) one binding,
// and weights + KV cache + activations a memory budget. On success `limits` holds the limits to request:
//   const device = await result.adapter.requestDevice({requiredLimits: result.limits});
// (the defaults raised only as far as this package needs, never past what the adapter offers).

import { PLANES, checkManifest, weightFiles } from './package.js';
import { tuningForAdapter } from './pipelines.js';
import { runStateBytes } from './state.js';
import { backToBack } from './weights.js';

export const DEFAULT_CONTEXT = 2048; // KV positions when the caller names none (capped by the model's own)
// prompt tokens per prefill pass (P); longer prompts take several passes. 256, not 128: twice the tokens per weight
// tile fill the GPU better (1.5B shape on an H100: 5.1k vs 3.9k tok/s, docs/PERFORMANCE.md); activations double
// (about 42 MB for the 3B shape's pass)
export const DEFAULT_PASS_TOKENS = 256;
export const DEFAULT_BUDGET_BYTES = 4 * 1024 ** 3; // weights + KV cache + activations; above this, refuse
const MiB = 1024 * 1024;

/** WebGPU's default limits, the floor a requiredLimits value never needs to go under. */
const DEFAULT_LIMITS = { maxStorageBufferBindingSize: 128 * MiB, maxBufferSize: 256 * MiB,
  maxComputeWorkgroupStorageSize: 16384 };
// Workgroup memory asked for where the adapter offers it: room for prefill matmul tiles of 128 rows by 128 tokens
// (matmul.wgsl: 128 bytes per tile row or token), twice WebGPU's default, which most GPUs offer
// (an H100 under Dawn: 48 KiB); a tuning that needs more than the device got is refused (pipelines.js matmul).
export const WORKGROUP_STORAGE_WANTED = 32768;

/**
 * Why the kernels cannot run this config, or null. Shared with loadModel.
 * @param {import('./package.js').ModelConfig} c
 * @returns {string | null}
 */
export function unsupported(c) {
  if (c.num_heads % c.num_kv_heads !== 0) return `num_heads ${c.num_heads} is not a multiple of num_kv_heads ${c.num_kv_heads}`;
  if (c.head_dim % 4 !== 0 || c.head_dim > 256) return `head_dim ${c.head_dim} is not a multiple of 4 up to 256 (attention.wgsl)`;
  if (!['llama', 'qwen2', 'qwen3', 'phi3', 'gemma3'].includes(c.architecture)) return `architecture ${c.architecture} is unknown`;
  if (c.qk_norm && c.attention_bias) return 'qk_norm with attention_bias is not supported';
  return null;
}

/**
 * Bytes model.js copies to stack a layer's q, k, v weights (`layer`: 'blk.N.'): 0 where the package stores their
 * planes back to back (a view then) or where no stack is made. Sizes only; the GPU-side checks are stackRows'.
 * @param {import('./package.js').Manifest} manifest @param {string} layer
 */
function stackCopyBytes(manifest, layer) {
  const trio = ['q', 'k', 'v'].map((x) => manifest.tensors[`${layer}attn_${x}.weight`]);
  if (trio.some((t) => !t || t.chunks.length !== 1 || t.storage !== trio[0].storage)) return 0; // no stack
  const planes = trio.map((t) => PLANES[t.storage].map((p) => /** @type {[string, number, number]} */ (
    [t.chunks[0].file, ...t.chunks[0].planes[p]])));
  return backToBack(planes) ? 0 : planes.flat().reduce((s, [, , n]) => s + n, 0);
}

/**
 * What a package needs from a device, for a given context and prefill pass size.
 * @param {import('./package.js').Manifest} manifest
 * @param {number} context      KV positions
 * @param {number} passTokens   tokens per prefill pass
 * @param {import('./pipelines.js').Tuning} tuning  the kernels' (a few run-state sizes depend on it)
 */
export function requirements(manifest, context, passTokens, tuning) {
  const files = weightFiles(manifest);
  const planes = Object.values(manifest.tensors).flatMap((t) => t.chunks.flatMap((c) => Object.values(c.planes)));
  const largestPlane = Math.max(0, ...planes.map(([, size]) => size));
  const largestShard = Math.max(0, ...files.map((f) => f.size));
  const weights = files.reduce((s, f) => s + f.size, 0);
  // model.js stacks each layer's q, k, v weights for decode and prefill: a second copy of those planes, unless the
  // package stores them back to back (weights.js stackRows)
  const stacked = Object.entries(manifest.tensors).filter(([name]) => /\.attn_q\.weight$/.test(name))
    .reduce((s, [name]) => s + stackCopyBytes(manifest, name.replace(/attn_q\.weight$/, '')), 0);
  const state = runStateBytes(manifest.config, context, passTokens, tuning);
  return {
    weights, // bytes of weight shards
    stacked, // bytes of the stacked q, k, v copies
    kvCache: state.kvCache, // bytes of K and V caches, all layers
    activations: state.activations, // bytes of every other run-state buffer
    total: weights + stacked + state.kvCache + state.activations,
    binding: Math.max(largestPlane, state.largest), // largest single storage binding
    buffer: Math.max(largestShard, state.largest), // largest single buffer
  };
}

/** The context loadModel uses when none is given. @param {import('./package.js').ModelConfig} c @param {number} [context] */
export function contextFor(c, context) {
  return Math.min(context ?? DEFAULT_CONTEXT, c.context_length);
}

/** @param {number} n */
const mib = (n) => `${(n / MiB).toFixed(n < 10 * MiB ? 1 : 0)} MiB`;

/**
 * @param {GPU | undefined | null} gpu  navigator.gpu (browser) or the Dawn GPU object (Node)
 * @param {import('./package.js').Manifest} [manifest]  without one, only the adapter is checked
 * @param {{context?: number, passTokens?: number, budgetBytes?: number,
 *          powerPreference?: GPUPowerPreference}} [opts]
 * @returns {Promise<{ok: boolean, reason?: string, adapter?: GPUAdapter, info?: object, limits?: Record<string, number>,
 *                    features?: string[], needs?: ReturnType<typeof requirements>}>}
 */
export async function probe(gpu, manifest, opts = {}) {
  if (!gpu) {
    return { ok: false, reason: 'WebGPU is not available here (no navigator.gpu): use a recent Chrome or Edge, or the local fallback server' };
  }
  /** @type {GPUAdapter | null} */
  let adapter;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  } catch (e) {
    return { ok: false, reason: `WebGPU adapter request failed: ${/** @type {Error} */ (e).message}` };
  }
  if (!adapter) {
    return { ok: false, reason: 'WebGPU is present but found no usable GPU adapter (blocklisted driver or disabled): use the local fallback server' };
  }
  const ai = adapter.info;
  const info = {
    vendor: ai?.vendor ?? '', architecture: ai?.architecture ?? '', device: ai?.device ?? '',
    description: ai?.description ?? '',
    isFallbackAdapter: /** @type {any} */ (ai)?.isFallbackAdapter ?? /** @type {any} */ (adapter).isFallbackAdapter ?? false,
  };
  const features = [...adapter.features].map(String).sort();
  const have = adapter.limits;
  const base = { adapter, info, features };
  if (!manifest) {
    return { ok: true, ...base, limits: { ...DEFAULT_LIMITS } };
  }
  try {
    checkManifest(manifest);
  } catch (e) {
    return { ok: false, ...base, reason: /** @type {Error} */ (e).message };
  }
  const c = manifest.config;
  const why = unsupported(c);
  if (why) return { ok: false, ...base, reason: `this engine cannot run ${manifest.name}: ${why}` };
  const context = contextFor(c, opts.context);
  const needs = requirements(manifest, context, opts.passTokens ?? DEFAULT_PASS_TOKENS, tuningForAdapter(info));
  const budget = opts.budgetBytes ?? DEFAULT_BUDGET_BYTES;
  if (needs.binding > have.maxStorageBufferBindingSize) {
    return { ok: false, ...base, needs, reason: `${manifest.name} needs a ${mib(needs.binding)} storage binding; this GPU ` +
      `allows ${mib(have.maxStorageBufferBindingSize)}: choose a smaller context or model` };
  }
  if (needs.buffer > have.maxBufferSize) {
    return { ok: false, ...base, needs, reason: `${manifest.name} needs a ${mib(needs.buffer)} buffer; this GPU allows ` +
      `${mib(have.maxBufferSize)}: choose a smaller context or model` };
  }
  if (needs.total > budget) {
    return { ok: false, ...base, needs, reason: `${manifest.name} needs ${mib(needs.total)} of GPU memory (weights ` +
      `${mib(needs.weights)} + ${mib(needs.stacked)} stacked for decode, KV cache ${mib(needs.kvCache)} for ${context} positions, activations ` +
      `${mib(needs.activations)}), more than the ${mib(budget)} allowed: choose a smaller context or model` };
  }
  const limits = {
    maxStorageBufferBindingSize: Math.min(have.maxStorageBufferBindingSize,
      Math.max(DEFAULT_LIMITS.maxStorageBufferBindingSize, needs.binding)),
    maxBufferSize: Math.min(have.maxBufferSize, Math.max(DEFAULT_LIMITS.maxBufferSize, needs.buffer)),
    maxComputeWorkgroupStorageSize: Math.max(DEFAULT_LIMITS.maxComputeWorkgroupStorageSize,
      Math.min(have.maxComputeWorkgroupStorageSize ?? 0, WORKGROUP_STORAGE_WANTED)),
  };
  return { ok: true, ...base, limits, needs };
}
