// buffers.js: GPU buffer creation and the uniform pool (every Params struct, created at load time).
//
// Usage flags are spelled as numbers (the WebGPU spec's values) rather than through the GPUBufferUsage global:
// Node with the `webgpu` package only has that global when the host copied the package's globals in.

export const USAGE = Object.freeze({
  MAP_READ: 0x0001,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
});
export const MAP_READ_MODE = 0x0001; // GPUMapMode.READ

import { packParams } from './params.js';

/**
 * A buffer of at least `bytes` bytes, rounded up to a multiple of 4 (writeBuffer and bindings need that).
 * @param {GPUDevice} device
 * @param {string} label
 * @param {number} bytes
 * @param {number} usage
 * @returns {GPUBuffer}
 */
export function createBuffer(device, label, bytes, usage) {
  return device.createBuffer({ label, size: Math.max(4, Math.ceil(bytes / 4) * 4), usage });
}

/** Storage usage of activations: kernels read and write them; the host writes ids and copies rows out. */
export const ACTIVATION = USAGE.STORAGE | USAGE.COPY_SRC | USAGE.COPY_DST;

/**
 * One uniform buffer per distinct Params value, shared by every dispatch that needs those bytes (all layers share
 * their shapes, so a 30-layer model needs a few dozen, not thousands). Two kinds:
 * - fixed: the bytes never change (decode: tokens = 1);
 * - perPass: some fields scale with the tokens of a prefill pass (tokens = T, n = T * intermediate, ...); setTokens(T)
 *   rewrites them with queue.writeBuffer before the pass is submitted (queue order keeps earlier passes intact).
 */
export class Uniforms {
  /** @param {GPUDevice} device */
  constructor(device) {
    this.device = device;
    /** @type {Map<string, GPUBuffer>} */
    this.buffers = new Map();
    /** @type {{buffer: GPUBuffer, params: import('./params.js').ParamsLayout, fixed: Record<string, number>, perToken: Record<string, number>}[]} */
    this.passParams = [];
    this.tokens = 0; // T of the last setTokens (0: never written)
  }

  /**
   * @param {string} key
   * @param {import('./params.js').ParamsLayout} params
   * @returns {[GPUBuffer, boolean]}  the buffer and whether it is new
   */
  _buffer(key, params) {
    const old = this.buffers.get(key);
    if (old) return [old, false];
    const buffer = createBuffer(this.device, `${params.shader} Params ${key}`, params.size,
      USAGE.UNIFORM | USAGE.COPY_DST);
    this.buffers.set(key, buffer);
    return [buffer, true];
  }

  /**
   * @param {import('./params.js').ParamsLayout} params
   * @param {Record<string, number>} values  every field
   * @returns {GPUBuffer}
   */
  fixed(params, values) {
    const bytes = packParams(params, values); // validates before anything is created
    const [buffer, fresh] = this._buffer(`${params.shader} ${JSON.stringify(values)}`, params);
    if (fresh) this.device.queue.writeBuffer(buffer, 0, bytes);
    return buffer;
  }

  /**
   * @param {import('./params.js').ParamsLayout} params
   * @param {Record<string, number>} fixed     fields that do not depend on the pass
   * @param {Record<string, number>} perToken  fields equal to T * value
   * @returns {GPUBuffer}
   */
  perPass(params, fixed, perToken) {
    packParams(params, { ...fixed, ...perToken }); // validates the field names now
    const key = `${params.shader} ${JSON.stringify(fixed)} per token ${JSON.stringify(perToken)}`;
    const [buffer, fresh] = this._buffer(key, params);
    if (fresh) {
      this.passParams.push({ buffer, params, fixed, perToken });
      this.tokens = 0;
    }
    return buffer;
  }

  /** Rewrites the perPass buffers for a pass of T tokens (nothing when T is unchanged). @param {number} T */
  setTokens(T) {
    if (T === this.tokens) return;
    for (const { buffer, params, fixed, perToken } of this.passParams) {
      const values = { ...fixed };
      for (const [k, v] of Object.entries(perToken)) values[k] = v * T;
      this.device.queue.writeBuffer(buffer, 0, packParams(params, values));
    }
    this.tokens = T;
  }

  destroy() {
    for (const b of this.buffers.values()) b.destroy();
    this.buffers.clear();
    this.passParams = [];
  }
}
