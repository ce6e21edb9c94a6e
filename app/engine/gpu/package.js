// package.js: the model package on the wire: manifest.json (checked) and weight shards (fetched, then verified by
// ../integrity.js).
// docs/FORMAT.md is the specification; the names here follow model_prep/format.py.

import { readVerified } from '../integrity.js';
import { FetchError, FormatError } from './errors.js';

export const FORMAT_NAME = 'fieldllm-model';
// version 2 = version 1 + config.rope_freq_factors (Llama 3.x RoPE scaling); version 3 = version 2 + config.qk_norm
// (Qwen3's per-head q/k RMSNorm); version 4 = version 3 + config.rope_attn_factor (Phi-3's longrope attention factor
// on cos and sin); version 5 = version 4 + the K-quant storages q4k, q5k, q6k (llama.cpp's Q4_K, Q5_K, Q6_K carried
// exactly) and gemma3 (config embedding_scale, post_norms, hidden_act, attention_scale, sliding_window + layer_types,
// rope_theta_sliding); packages with none of them stay version 1
export const SUPPORTED_FORMAT_VERSIONS = Object.freeze([1, 2, 3, 4, 5]);
export const MANIFEST_FILE = 'manifest.json';
export const PLANE_ALIGN = 256; // bytes: every plane starts at a multiple (WebGPU's storage offset alignment)

/**
 * @typedef {object} ModelConfig  manifest.config (docs/FORMAT.md)
 * @property {'llama' | 'qwen2' | 'qwen3' | 'phi3' | 'gemma3'} architecture
 * @property {number} vocab_size
 * @property {number} hidden_size
 * @property {number} intermediate_size
 * @property {number} num_layers
 * @property {number} num_heads
 * @property {number} num_kv_heads
 * @property {number} head_dim
 * @property {number} rms_norm_eps
 * @property {number} rope_theta
 * @property {'interleaved' | 'half'} rope_layout
 * @property {number} context_length
 * @property {boolean} tie_word_embeddings
 * @property {boolean} attention_bias
 * @property {number[]} [rope_freq_factors]  one RoPE divisor per frequency, head_dim / 2 (format version 2; ./rope.js)
 * @property {boolean} [qk_norm]  RMSNorm of each q and k head before RoPE, blk.N.attn_q_norm / attn_k_norm.weight
 *   (qwen3; format version 3)
 * @property {number} [rope_attn_factor]  cos and sin of every RoPE angle times it (phi3's longrope; format version 4;
 *   ./rope.js ropeScale)
 * The gemma3 keys (format version 5; absent = the llama behaviour):
 * @property {number} [embedding_scale]  the embedding row times it on lookup (not the tied output head)
 * @property {boolean} [post_norms]  blk.N.post_attention_norm / post_ffw_norm: h += rmsnorm(out) * w after attention
 *   and the MLP
 * @property {'silu' | 'gelu_tanh'} [hidden_act]  the MLP gate's activation (default silu: SwiGLU)
 * @property {number} [attention_scale]  softmax(q.k * attention_scale) (default 1 / sqrt(head_dim))
 * @property {number} [sliding_window]  keys a "sliding" layer's query sees: its last sliding_window positions
 * @property {('sliding' | 'full')[]} [layer_types]  one per layer
 * @property {number} [rope_theta_sliding]  RoPE base of the "sliding" layers (no rope_freq_factors, no attn factor)
 */
/** @typedef {'q4' | 'q8' | 'f32' | 'q4k' | 'q5k' | 'q6k'} Storage */
/**
 * @typedef {object} ChunkEntry  one row range of a tensor, inside one shard
 * @property {string} file
 * @property {[number, number]} rows                      [start, stop) rows of the tensor
 * @property {Record<string, [number, number]>} planes    plane name -> [byte offset in file, byte length]
 */
/**
 * @typedef {object} TensorEntry
 * @property {Storage} storage
 * @property {number[]} shape          [rows, cols] or [n]
 * @property {ChunkEntry[]} chunks
 */
/** @typedef {{path: string, size: number, sha256: string}} FileEntry */
/**
 * @typedef {object} Manifest
 * @property {string} format
 * @property {number} format_version
 * @property {string} name
 * @property {string} [package_id]
 * @property {ModelConfig} config
 * @property {Record<string, any>} [generation]
 * @property {string} [chat_template]
 * @property {string} [tokenizer]
 * @property {Record<string, TensorEntry>} tensors
 * @property {FileEntry[]} files
 */

/** Planes of each storage type, in file order. */
export const PLANES = Object.freeze({
  q4: ['qweight', 'scales'], q8: ['qweight', 'scales'], f32: ['data'],
  q4k: ['qweight', 'super'], q5k: ['qweight', 'qhigh', 'super'], q6k: ['qweight', 'qhigh', 'super'],
});
/** The K-quant storages (format version 5): 256-value super-blocks, kernels *_kq.wgsl. */
export const K_STORAGES = Object.freeze(['q4k', 'q5k', 'q6k']);

/**
 * Throws FormatError unless `m` is a package this engine can read.
 * @param {any} m  parsed manifest.json
 * @returns {Manifest}
 */
export function checkManifest(m) {
  const supported = `format "${FORMAT_NAME}" version ${SUPPORTED_FORMAT_VERSIONS.join(' or ')}`;
  if (!m || typeof m !== 'object' || m.format !== FORMAT_NAME) {
    throw new FormatError(`manifest.json is not a fieldllm model package (format ${JSON.stringify(m?.format)}); ` +
      `this engine reads ${supported}: rebuild it with \`fieldllm prepare\``);
  }
  if (!SUPPORTED_FORMAT_VERSIONS.includes(m.format_version)) {
    throw new FormatError(`model package format_version ${m.format_version} is not supported; this engine reads ` +
      `${supported}: update the app, or rebuild the package with a matching \`fieldllm prepare\``);
  }
  const c = m.config;
  const need = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_layers', 'num_heads', 'num_kv_heads',
    'head_dim', 'rms_norm_eps', 'rope_theta', 'context_length'];
  const bad = c ? need.filter((k) => typeof c[k] !== 'number' || !(c[k] > 0)) : need;
  if (bad.length) throw new FormatError(`manifest.json config lacks ${bad.join(', ')}: rebuild the package`);
  const factors = c.rope_freq_factors;
  if (factors !== undefined && (m.format_version < 2 || !Array.isArray(factors) || factors.length !== c.head_dim / 2 ||
      !factors.every((f) => typeof f === 'number' && Number.isFinite(f) && f > 0))) {
    throw new FormatError(`manifest.json config.rope_freq_factors must be ${c.head_dim / 2} positive numbers in a ` +
      'package of format_version 2: rebuild the package');
  }
  if (c.qk_norm !== undefined && (m.format_version < 3 || typeof c.qk_norm !== 'boolean')) {
    throw new FormatError('manifest.json config.qk_norm must be true or false in a package of format_version 3: ' +
      'rebuild the package');
  }
  const scale = c.rope_attn_factor;
  if (scale !== undefined && (m.format_version < 4 || typeof scale !== 'number' || !Number.isFinite(scale) ||
      !(scale > 0))) {
    throw new FormatError('manifest.json config.rope_attn_factor must be a positive number in a package of ' +
      'format_version 4: rebuild the package');
  }
  const bad5 = [];
  const positive = (/** @type {any} */ v) => typeof v === 'number' && Number.isFinite(v) && v > 0;
  if (c.embedding_scale !== undefined && !positive(c.embedding_scale)) bad5.push('embedding_scale');
  if (c.attention_scale !== undefined && !positive(c.attention_scale)) bad5.push('attention_scale');
  if (c.rope_theta_sliding !== undefined && !positive(c.rope_theta_sliding)) bad5.push('rope_theta_sliding');
  if (c.post_norms !== undefined && typeof c.post_norms !== 'boolean') bad5.push('post_norms');
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu' && c.hidden_act !== 'gelu_tanh') bad5.push('hidden_act');
  if (c.sliding_window !== undefined && !(Number.isInteger(c.sliding_window) && c.sliding_window > 0)) {
    bad5.push('sliding_window');
  }
  if (c.layer_types !== undefined && (!Array.isArray(c.layer_types) || c.layer_types.length !== c.num_layers ||
      !c.layer_types.every((/** @type {any} */ t) => t === 'sliding' || t === 'full') ||
      (c.layer_types.includes('sliding') && c.sliding_window === undefined))) {
    bad5.push('layer_types');
  }
  const gemmaKeys = ['embedding_scale', 'attention_scale', 'rope_theta_sliding', 'post_norms', 'hidden_act',
    'sliding_window', 'layer_types'].filter((k) => c[k] !== undefined);
  if (bad5.length || (gemmaKeys.length && m.format_version < 5)) {
    throw new FormatError(`manifest.json config ${(bad5.length ? bad5 : gemmaKeys).join(', ')} invalid or in a ` +
      'package below format_version 5: rebuild the package');
  }
  if (c.rope_layout !== 'interleaved' && c.rope_layout !== 'half') {
    throw new FormatError(`manifest.json config.rope_layout ${JSON.stringify(c.rope_layout)} is unknown ` +
      `(expected "interleaved" or "half"): rebuild the package`);
  }
  if (!m.tensors || !Array.isArray(m.files)) throw new FormatError('manifest.json lacks tensors or files: rebuild it');
  for (const [name, t] of Object.entries(/** @type {Record<string, TensorEntry>} */ (m.tensors))) {
    if (!(t.storage in PLANES)) {
      throw new FormatError(`tensor ${name} has storage ${JSON.stringify(t.storage)}; this engine knows ` +
        `${Object.keys(PLANES).join(', ')}: rebuild the package`);
    }
    if (K_STORAGES.includes(t.storage) && (m.format_version < 5 || t.shape[t.shape.length - 1] % 256 !== 0)) {
      throw new FormatError(`tensor ${name} has storage ${t.storage}, which needs format_version 5 and rows of a ` +
        'multiple of 256 values: rebuild the package');
    }
    for (const ch of t.chunks) {
      for (const p of PLANES[t.storage]) {
        const plane = ch.planes[p];
        if (!plane || plane[0] % PLANE_ALIGN !== 0) {
          throw new FormatError(`tensor ${name}: plane ${p} missing or not ${PLANE_ALIGN}-byte aligned: rebuild the package`);
        }
      }
    }
  }
  return /** @type {Manifest} */ (m);
}

/**
 * The files holding weights (every file a tensor chunk names), in manifest order.
 * @param {Manifest} m
 * @returns {FileEntry[]}
 */
export function weightFiles(m) {
  const used = new Set(Object.values(m.tensors).flatMap((t) => t.chunks.map((c) => c.file)));
  const files = m.files.filter((f) => used.has(f.path));
  const listed = new Set(files.map((f) => f.path));
  const unlisted = [...used].filter((p) => !listed.has(p));
  if (unlisted.length) throw new FormatError(`manifest.json files lacks ${unlisted.join(', ')}: rebuild the package`);
  return files;
}

/**
 * @param {string | URL} base
 * @param {string} path
 */
function resolve(base, path) {
  const b = String(base);
  return new URL(path, b.endsWith('/') ? b : b + '/');
}

/**
 * @param {typeof fetch} fetchFn
 * @param {URL} url
 * @param {AbortSignal | undefined} signal
 */
async function get(fetchFn, url, signal) {
  let res;
  try {
    res = await fetchFn(url, { signal });
  } catch (e) {
    if (signal?.aborted) throw signal.reason ?? e;
    throw new FetchError(`could not fetch ${url}: ${/** @type {Error} */ (e).message}; check the connection, or ` +
      'reinstall the model while online');
  }
  if (!res.ok) {
    throw new FetchError(`could not fetch ${url}: HTTP ${res.status} ${res.statusText}; the package is incomplete ` +
      'on the server or in the offline cache: reinstall the model');
  }
  return res;
}

/**
 * Fetches and checks manifest.json.
 * @param {string | URL} baseUrl  the package folder
 * @param {typeof fetch} fetchFn
 * @param {AbortSignal} [signal]
 * @returns {Promise<Manifest>}
 */
export async function fetchManifest(baseUrl, fetchFn, signal) {
  const url = resolve(baseUrl, MANIFEST_FILE);
  const res = await get(fetchFn, url, signal);
  let json;
  try {
    json = await res.json();
  } catch (e) {
    throw new FormatError(`${url} is not JSON (${/** @type {Error} */ (e).message}): reinstall the model`);
  }
  return checkManifest(json);
}

/**
 * Fetches one package file into memory, streaming (for progress), then checks its size and sha256.
 * @param {string | URL} baseUrl
 * @param {FileEntry} file
 * @param {typeof fetch} fetchFn
 * @param {{signal?: AbortSignal, onBytes?: (n: number) => void}} [opts]  onBytes: bytes received since the last call
 * @returns {Promise<Uint8Array>}  exactly file.size bytes
 */
export async function fetchVerified(baseUrl, file, fetchFn, opts = {}) {
  const url = resolve(baseUrl, file.path);
  return readVerified(await get(fetchFn, url, opts.signal), file, opts.onBytes);
}
