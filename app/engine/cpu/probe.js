// probe.js: can this device run this package on the CPU engine (model.js, WebAssembly)? One call before anything is
// downloaded, like ../gpu/probe.js for WebGPU.
//
// probeCpu(manifest, {wasm, deviceMemory}) checks that the browser compiles WebAssembly with SIMD128 (the engine's
// kernels need it), that the package's heap (weights as stored + KV cache + activations: requirements().total) fits
// the 4 GiB a wasm32 heap can address, and, where the browser tells the device's memory (navigator.deviceMemory), that
// it is not surely larger than the device's RAM. navigator.deviceMemory is a coarse lower bound in GiB (rounded down
// to a power of two: 0.25 .. 8, and capped at 8): a device that reports D has less than 2 * D GiB, so only a heap
// above 2 * D GiB (D < 8) is refused; anything less might fit and is tried.

import { checkManifest } from '../gpu/package.js';
import { DEFAULT_CONTEXT, DEFAULT_PASS_TOKENS, MAX_HEAP_BYTES, requirements, unsupported } from './model.js';

/** The largest value navigator.deviceMemory reports (browsers cap it): above it, nothing is known. */
export const DEVICE_MEMORY_CAP_GIB = 8;
const GiB = 1024 ** 3;

/**
 * A module whose one function uses SIMD128 ((func (result v128) i32.const 0 i8x16.splat i8x16.popcnt), as
 * wasm-feature-detect's simd test): a browser that validates it runs cpu_engine.wasm's vector code.
 */
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0,
  65, 0, 253, 15, 253, 98, 11]);

/** @param {number} n */
const gib = (n) => `${(n / GiB).toFixed(n < 10 * GiB ? 1 : 0)} GiB`;
/** @param {number} n */
const mib = (n) => `${(n / 1024 ** 2).toFixed(0)} MiB`;

/**
 * @typedef {object} CpuProbe
 * @property {boolean} ok
 * @property {string} [reason]   why not, one sentence ending with what to do
 * @property {ReturnType<typeof requirements>} [needs]  with a manifest: the heap it needs
 * @property {number} [context]  with a manifest: the KV positions that heap holds
 */

/**
 * @param {import('../gpu/package.js').Manifest | null} [manifest]  without one, only the browser is checked
 * @param {{wasm?: typeof WebAssembly | null, deviceMemory?: number | null, context?: number, passTokens?: number,
 *          maxHeapBytes?: number}} [opts]  wasm: the WebAssembly global (default globalThis's); deviceMemory:
 *   navigator.deviceMemory where the browser has it (GiB)
 * @returns {CpuProbe}
 */
export function probeCpu(manifest = null, opts = {}) {
  const wasm = 'wasm' in opts ? opts.wasm : globalThis.WebAssembly;
  if (!wasm || typeof wasm.validate !== 'function') {
    return { ok: false, reason: 'this browser has no WebAssembly (or it is turned off): use a recent Chrome, Edge, ' +
      'Firefox or Safari' };
  }
  let simd = false;
  try {
    simd = wasm.validate(SIMD_PROBE);
  } catch {
    simd = false;
  }
  if (!simd) {
    return { ok: false, reason: "this browser's WebAssembly has no SIMD (Chrome/Edge 91, Firefox 89, Safari 16.4 " +
      'and later have it): update the browser' };
  }
  if (!manifest) return { ok: true };
  try {
    checkManifest(manifest);
  } catch (e) {
    return { ok: false, reason: /** @type {Error} */ (e).message };
  }
  const c = manifest.config;
  const why = unsupported(c);
  if (why) return { ok: false, reason: `the CPU engine cannot run ${manifest.name}: ${why}` };
  const context = Math.min(opts.context ?? DEFAULT_CONTEXT, c.context_length);
  const needs = requirements(manifest, context, Math.min(opts.passTokens ?? DEFAULT_PASS_TOKENS, context));
  const limit = opts.maxHeapBytes ?? MAX_HEAP_BYTES;
  if (needs.total > limit) {
    return { ok: false, needs, context, reason: `${manifest.name} needs ${mib(needs.total)} of WebAssembly memory ` +
      `(weights ${mib(needs.weights)}, KV cache ${mib(needs.kvCache)} for ${context} positions), more than the ` +
      `${mib(limit)} a wasm32 heap holds: choose a smaller context or model` };
  }
  const d = opts.deviceMemory;
  if (typeof d === 'number' && d > 0 && d < DEVICE_MEMORY_CAP_GIB && needs.total > 2 * d * GiB) {
    return { ok: false, needs, context, reason: `${manifest.name} needs ${gib(needs.total)} of memory and this ` +
      `device has less than ${gib(2 * d * GiB)} (the browser reports ${d} GiB): use a device with more memory, or ` +
      'a smaller model' };
  }
  return { ok: true, needs, context };
}
