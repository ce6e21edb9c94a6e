// kernels.js: each kernel's host contract, as webgpu_shaders/kernels.json declares it once for the engine and the
// kernel tests: its Params layout (params.js) and the override constants the engine compiles it with (pipelines.js).

import declaration from '../../../webgpu_shaders/kernels.json' with { type: 'json' };

/** @typedef {Record<string, number>} Constants  override constants (bools as 0 / 1) */
/**
 * @typedef {object} KernelDeclaration
 * @property {string[]} params                   Params fields in declaration order, "name:kind"
 * @property {{gpu: Constants, cpu?: Constants, gpu_long?: Constants, gpu_wide?: Constants}} tunings
 *   gpu: for GPUs; cpu: for CPU adapters (else gpu); gpu_long: matvec.wgsl rows of at least long_min_cols inputs;
 *   gpu_wide: matmul.wgsl weights of at least wide_min_rows rows
 * @property {number} [long_min_cols]
 * @property {number} [wide_min_rows]
 */

/** Declaration by shader file name, in load order. @type {Readonly<Record<string, KernelDeclaration>>} */
export const KERNELS = declaration.kernels;

/** Every kernel file the engine uses (fetched at load). */
export const SHADERS = Object.freeze(Object.keys(KERNELS));
