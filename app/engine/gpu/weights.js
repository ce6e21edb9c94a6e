// weights.js: the package's shards in GPU memory, and each tensor as (buffer, offset, size) plane bindings.
//
// One GPU buffer per shard file, written once at load; a tensor chunk's planes are ranges of it (offsets are
// 256-aligned by construction, docs/FORMAT.md), so no weight is ever copied or dequantized on the GPU.

import { USAGE, createBuffer } from './buffers.js';
import { CapacityError, FormatError } from './errors.js';
import { PLANES, fetchVerified, weightFiles } from './package.js';

/**
 * @typedef {object} TensorChunk
 * @property {number} rowStart               first row of the tensor held by this chunk
 * @property {number} rows                   rows in this chunk
 * @property {GPUBufferBinding[]} planes     PLANES[storage] order: q4/q8 [qweight, scales], f32 [data], q4k
 *   [qweight, super], q5k/q6k [qweight, qhigh, super] (kernelPlanes: the kernels' binding order)
 */
/**
 * @typedef {object} Tensor  a weight as the kernels see it: rows = output features, cols = input features
 * @property {string} name
 * @property {import('./package.js').Storage} storage
 * @property {number} rows                   [rows, cols]; vectors are one row of n
 * @property {number} cols
 * @property {TensorChunk[]} chunks          row ranges in order, covering 0..rows
 */

/**
 * Fetches, verifies and uploads every weight shard; returns the shard buffers and a tensor lookup.
 * @param {GPUDevice} device
 * @param {import('./package.js').Manifest} manifest
 * @param {{baseUrl: string | URL, fetch: typeof fetch, signal?: AbortSignal,
 *          onProgress?: (p: {loadedBytes: number, totalBytes: number, file: string}) => void}} opts
 */
export async function loadWeights(device, manifest, opts) {
  const files = weightFiles(manifest);
  const totalBytes = files.reduce((s, f) => s + f.size, 0);
  const maxBuffer = device.limits.maxBufferSize;
  const big = files.find((f) => f.size > maxBuffer);
  if (big) {
    throw new CapacityError(`shard ${big.path} (${big.size} bytes) exceeds this device's maxBufferSize (${maxBuffer}): ` +
      'create the device with the limits probe() returns, or rebuild the package with a smaller --shard-size');
  }
  /** @type {Map<string, GPUBuffer>} */
  const shards = new Map();
  let loadedBytes = 0;
  try {
    // one file at a time: peak host memory stays at one shard (32 MiB by default)
    for (const f of files) {
      opts.onProgress?.({ loadedBytes, totalBytes, file: f.path });
      const data = await fetchVerified(opts.baseUrl, f, opts.fetch, {
        signal: opts.signal,
        onBytes: (n) => {
          loadedBytes += n;
          opts.onProgress?.({ loadedBytes, totalBytes, file: f.path });
        },
      });
      // COPY_SRC: model.js copies qwen2's q, k, v biases side by side at load (the weights stay where they are)
      const buffer = createBuffer(device, f.path, f.size, USAGE.STORAGE | USAGE.COPY_DST | USAGE.COPY_SRC);
      shards.set(f.path, buffer);
      const whole = f.size - (f.size % 4); // writeBuffer moves multiples of 4 bytes; pad the tail by hand
      if (whole) device.queue.writeBuffer(buffer, 0, /** @type {Uint8Array<ArrayBuffer>} */ (data), 0, whole);
      if (whole !== f.size) {
        const tail = new Uint8Array(4);
        tail.set(data.subarray(whole));
        device.queue.writeBuffer(buffer, whole, tail);
      }
    }
  } catch (e) {
    for (const b of shards.values()) b.destroy();
    throw e;
  }
  return { shards, totalBytes, tensor: (/** @type {string} */ name) => tensorView(manifest, shards, name, device) };
}

/**
 * @param {import('./package.js').Manifest} manifest
 * @param {Map<string, GPUBuffer>} shards
 * @param {string} name
 * @param {GPUDevice} device
 * @returns {Tensor}
 */
function tensorView(manifest, shards, name, device) {
  const t = manifest.tensors[name];
  if (!t) throw new FormatError(`the package has no tensor ${name}: rebuild it with \`fieldllm prepare\``);
  const [rows, cols] = t.shape.length === 2 ? t.shape : [1, t.shape[0]];
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  let next = 0;
  const chunks = t.chunks.map((c) => {
    if (c.rows[0] !== next) throw new FormatError(`tensor ${name}: chunks do not cover its rows in order: rebuild it`);
    next = c.rows[1];
    const buffer = /** @type {GPUBuffer} */ (shards.get(c.file));
    const planes = PLANES[t.storage].map((p) => {
      const [offset, size] = c.planes[p];
      if (size > maxBinding) {
        throw new CapacityError(`tensor ${name} plane ${p} (${size} bytes) exceeds this device's ` +
          `maxStorageBufferBindingSize (${maxBinding}): create the device with the limits probe() returns`);
      }
      return { buffer, offset, size };
    });
    return { rowStart: c.rows[0], rows: c.rows[1] - c.rows[0], planes };
  });
  if (t.shape.length === 2 && next !== rows) throw new FormatError(`tensor ${name}: chunks end at row ${next} of ${rows}`);
  return { name, storage: t.storage, rows, cols, chunks };
}

/** @param {Tensor} t @returns {GPUBufferBinding} the single plane of an f32 vector (norm weight, bias) */
export function vectorBinding(t) {
  if (t.storage !== 'f32' || t.chunks.length !== 1) {
    throw new FormatError(`${t.name} must be one f32 chunk (found ${t.storage}, ${t.chunks.length} chunks)`);
  }
  return t.chunks[0].planes[0];
}


/** Bytes per row of each plane (PLANES order), by storage. @type {Record<string, (cols: number) => number[]>} */
const ROW_BYTES = {
  q4: (cols) => [cols / 2, cols / 8], q8: (cols) => [cols, cols / 16], f32: (cols) => [4 * cols],
  q4k: (cols) => [cols / 2, (cols / 256) * 20], // qweight, super (5 u32 per 256 values)
  q5k: (cols) => [cols / 2, cols / 8, (cols / 256) * 20], // qweight, qhigh (1 bit a value), super
  q6k: (cols) => [cols / 2, cols / 4, (cols / 256) * 20], // qweight, qhigh (2 bits a value), super
};

/**
 * A chunk's planes in the order the kernels bind them: as stored for q4, q8, f32; [qweight, qhigh, super] for the
 * K-quant storages (the *_kq.wgsl kernels), q4k's qhigh being its qweight again (a placeholder the kernel never reads).
 * @param {import('./package.js').Storage} storage
 * @param {GPUBufferBinding[]} planes  PLANES[storage] order
 * @returns {GPUBufferBinding[]}
 */
export function kernelPlanes(storage, planes) {
  return storage === 'q4k' ? [planes[0], planes[0], planes[1]] : planes;
}

/**
 * Whether each plane j of the tensors lies back to back in one place: plane j of tensor i + 1 starts where tensor
 * i's ends, in the same shard (model_prep/plan.py lays a layer's q, k, v out so). Each tensor is its one chunk's
 * planes as [where (a shard's buffer or file), offset, bytes].
 * @template W
 * @param {[W, number, number][][]} tensors
 */
export function backToBack(tensors) {
  return tensors.slice(1).every((planes, i) => planes.every(([where, offset], j) => {
    const [w, o, n] = tensors[i][j];
    return where === w && offset === o + n;
  }));
}

/**
 * Weights with one storage and one `cols` as one tensor of sum(rows) rows whose planes are the inputs' planes back
 * to back (quantized as stored, never dequantized). Decode uses it to run the q, k and v projections as one matvec
 * and prefill as one matmul. Where the package already stores them back to back (packages prepared since
 * PREP_VERSION 4) the stacked tensor is a view of the shard (buffer null); else the planes are copied at load into a
 * new buffer. Null when the planes cannot simply be concatenated (mixed storage, several chunks, or a q8 scales
 * plane padded mid-way).
 * @param {GPUDevice} device
 * @param {string} name
 * @param {Tensor[]} tensors
 * @returns {{tensor: Tensor, buffer: GPUBuffer | null} | null}  the caller owns buffer
 */
export function stackRows(device, name, tensors) {
  const [first] = tensors;
  const { storage, cols } = first;
  const perRow = ROW_BYTES[storage](cols);
  const exact = tensors.every((t) => t.storage === storage && t.cols === cols && t.chunks.length === 1 &&
    t.chunks[0].planes.every((p, j) => p.size === t.rows * perRow[j] && (p.size ?? 0) % 4 === 0));
  if (!exact) return null;
  const rows = tensors.reduce((s, t) => s + t.rows, 0);
  const sizes = perRow.map((b) => rows * b);
  if (Math.max(...sizes) > device.limits.maxStorageBufferBindingSize) return null;
  const bindings = tensors.map((t) => t.chunks[0].planes.map((p) => /** @type {[GPUBuffer, number, number]} */ (
    [p.buffer, p.offset ?? 0, p.size ?? 0])));
  if (backToBack(bindings)) {
    const planes = bindings[0].map(([buffer, offset], j) => ({ buffer, offset, size: sizes[j] }));
    return { tensor: { name, storage, rows, cols, chunks: [{ rowStart: 0, rows, planes }] }, buffer: null };
  }
  const starts = sizes.map((_, j) => sizes.slice(0, j).reduce((a, b) => a + Math.ceil(b / 256) * 256, 0));
  const total = starts[starts.length - 1] + sizes[sizes.length - 1];
  const buffer = createBuffer(device, name, total, USAGE.STORAGE | USAGE.COPY_DST);
  const enc = device.createCommandEncoder();
  const at = [...starts];
  for (const t of tensors) {
    t.chunks[0].planes.forEach((p, j) => {
      const size = /** @type {number} */ (p.size);
      enc.copyBufferToBuffer(p.buffer, p.offset ?? 0, buffer, at[j], size);
      at[j] += size;
    });
  }
  device.queue.submit([enc.finish()]);
  const planes = sizes.map((size, j) => ({ buffer, offset: starts[j], size }));
  return { tensor: { name, storage, rows, cols, chunks: [{ rowStart: 0, rows, planes }] }, buffer };
}
