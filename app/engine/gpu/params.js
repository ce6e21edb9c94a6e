// params.js: the uniform `Params` layout of every WGSL kernel, as webgpu_shaders/kernels.json declares it (the
// kernel tests read the same file, and tests/kernels/test_params.py checks each layout against its shader's
// `struct Params`, field by field, and its byte size against the compiled pipeline). Every field is a 4-byte scalar,
// so WGSL lays the struct out densely: size = 4 * fields.

import { KERNELS } from './kernels.js';

/** @typedef {'u32' | 'f32'} Scalar */
/**
 * @typedef {object} ParamsLayout
 * @property {string} shader                              the .wgsl file that declares the struct
 * @property {ReadonlyArray<{name: string, kind: Scalar}>} fields   in declaration order
 * @property {number} size                                bytes (4 per field)
 */

/**
 * @param {string} shader
 * @param {...string} fields  "name:kind"
 * @returns {ParamsLayout}
 */
function layout(shader, ...fields) {
  const parsed = fields.map((f) => {
    const [name, kind] = f.split(':');
    if (kind !== 'u32' && kind !== 'f32') throw new Error(`${shader}: bad field ${f}`);
    return { name, kind: /** @type {Scalar} */ (kind) };
  });
  return Object.freeze({ shader, fields: Object.freeze(parsed), size: 4 * parsed.length });
}

/** Layout by shader file name. @type {Readonly<Record<string, ParamsLayout>>} */
export const PARAMS = Object.freeze(Object.fromEntries(
  Object.entries(KERNELS).map(([shader, k]) => [shader, layout(shader, ...k.params)])));

/**
 * The bytes of one Params struct. Every field must be given, and nothing else (a typo would otherwise upload 0).
 * @param {ParamsLayout} params
 * @param {Record<string, number>} values
 * @returns {ArrayBuffer}  params.size bytes, little-endian
 */
export function packParams(params, values) {
  const names = params.fields.map((f) => f.name);
  const extra = Object.keys(values).filter((k) => !names.includes(k));
  const missing = names.filter((k) => !(k in values));
  if (extra.length || missing.length) {
    throw new Error(`${params.shader} Params: missing [${missing}] unknown [${extra}]`);
  }
  const buf = new ArrayBuffer(params.size);
  const view = new DataView(buf);
  params.fields.forEach((f, i) => {
    const v = values[f.name];
    if (f.kind === 'f32') {
      view.setFloat32(4 * i, v, true);
    } else {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new Error(`${params.shader} Params.${f.name} must be a u32, got ${v}`);
      }
      view.setUint32(4 * i, v, true);
    }
  });
  return buf;
}
