// kernels.js: each kernel's host contract, as webgpu_shaders/kernels.json declares it once for the engine and the
// kernel tests: its Params layout (params.js) and the override constants the engine compiles it with (pipelines.js).

import declaration from '../../../webgpu_shaders/kernels.json' with { type: 'json' };

/** @typedef {Record<string, number>} Constants  override constants (bools as 0 / 1) */
/**
 * @typedef {object} KernelDeclaration
 * @property {string[]} params                   Params fields in declaration order, "name:kind"
 * @property {string[]} [include]                library files joined before the kernel's source (shaderSource)
 * @property {{gpu: Constants, cpu?: Constants, gpu_long?: Constants, gpu_wide?: Constants}} tunings
 *   gpu: for GPUs; cpu: for CPU adapters (else gpu); gpu_long: matvec.wgsl rows of at least long_min_cols inputs;
 *   gpu_wide: matmul.wgsl weights of at least wide_min_rows rows
 * @property {number} [long_min_cols]
 * @property {number} [wide_min_rows]
 */

/** Declaration by shader file name, in load order. @type {Readonly<Record<string, KernelDeclaration>>} */
export const KERNELS = declaration.kernels;

/** Every kernel file the engine uses (compiled at load). */
export const SHADERS = Object.freeze(Object.keys(KERNELS));

/** Every .wgsl file the engine fetches: the kernels, then the library files they include. */
export const SHADER_FILES = Object.freeze([...new Set([...SHADERS, ...SHADERS.flatMap((s) => KERNELS[s].include ?? [])])]);

/**
 * The WGSL that compiles as `shader`: each file its declaration includes, then its own file (WGSL has no #include).
 * Includes first: with kquant.wgsl after matmul_kq.wgsl, naga 29 (Python wgpu, the kernel tests) panics compiling it
 * (an assertion in its override handling), and the declarations used to stand in that order. Compiler line numbers
 * count from the first include's first line. The one join, for the engine (pipelines.js) and the Node benchmarks.
 * @param {string} shader  a kernel file name (a key of KERNELS; any other file: itself alone)
 * @param {(file: string) => Promise<string>} read  a file of webgpu_shaders/ by name
 * @returns {Promise<string>}
 */
export async function shaderSource(shader, read) {
  const parts = await Promise.all([...(KERNELS[shader]?.include ?? []), shader].map(read));
  return parts.join('\n');
}
