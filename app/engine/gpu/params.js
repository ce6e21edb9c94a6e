// params.js: the uniform `Params` layout of every WGSL kernel, declared once on the JS side.
//
// Mirrors tests/kernels/kernels.py PARAMS (which test_params.py checks field by field against each shader's
// `struct Params`), so a JS test can compare these with the WGSL structs the same way. Every field is a 4-byte
// scalar, so WGSL lays the struct out densely: size = 4 * fields. The f32 twins (matvec_f32, matmul_f32, embed_f32)
// share the layout of their q4/q8 kernel on purpose: the engine fills the same values whatever the storage.

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

const MATVEC = layout('matvec.wgsl', 'rows:u32', 'cols:u32', 'row_offset:u32', 'eps:f32');
const MATMUL = layout('matmul.wgsl', 'rows:u32', 'cols:u32', 'row_offset:u32', 'tokens:u32', 'y_stride:u32');
const EMBED = layout('embed.wgsl', 'row_start:u32', 'rows:u32', 'cols:u32', 'tokens:u32');

/** Layout by shader file name. @type {Readonly<Record<string, ParamsLayout>>} */
export const PARAMS = Object.freeze({
  'matvec.wgsl': MATVEC,
  'matvec_f32.wgsl': { ...MATVEC, shader: 'matvec_f32.wgsl' },
  'matmul.wgsl': MATMUL,
  'matmul_f32.wgsl': { ...MATMUL, shader: 'matmul_f32.wgsl' },
  'embed.wgsl': EMBED,
  'embed_f32.wgsl': { ...EMBED, shader: 'embed_f32.wgsl' },
  'rmsnorm.wgsl': layout('rmsnorm.wgsl', 'n:u32', 'eps:f32'),
  'rope_table.wgsl': layout('rope_table.wgsl', 'tokens:u32', 'num_heads:u32', 'num_kv_heads:u32', 'head_dim:u32',
    'capacity:u32'),
  'attention.wgsl': layout('attention.wgsl', 'num_heads:u32', 'num_kv_heads:u32', 'head_dim:u32', 'capacity:u32',
    'scale:f32'),
  'attention_split.wgsl': layout('attention_split.wgsl', 'num_heads:u32', 'num_kv_heads:u32', 'head_dim:u32',
    'capacity:u32', 'splits:u32', 'scale:f32'),
  'attention_combine.wgsl': layout('attention_combine.wgsl', 'num_heads:u32', 'head_dim:u32', 'capacity:u32',
    'splits:u32', 'split_positions:u32'),
  'swiglu.wgsl': layout('swiglu.wgsl', 'n:u32'),
  'bias.wgsl': layout('bias.wgsl', 'n:u32', 'tokens:u32'),
  'argmax.wgsl': layout('argmax.wgsl', 'n:u32'),
});

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
