// rope.js: the RoPE inverse frequencies of a model config, as model_prep/rope.py computes them (docs/FORMAT.md):
// inv_freq[i] = 1 / (theta ** (2i / D) * factor[i]), factor[i] = config.rope_freq_factors[i] (Llama 3.x "llama3"
// scaling, or Phi-3's longrope short factors) or 1 where the package has none. JS numbers are float64, as the
// reference's. ropeScale: config.rope_attn_factor (longrope's attention factor on cos and sin) or 1.

/**
 * @param {{rope_theta: number, head_dim: number, rope_freq_factors?: number[]}} c  manifest.config
 * @returns {Float64Array}  [head_dim / 2] radians per position
 */
export function ropeInvFreq(c) {
  const half = c.head_dim / 2;
  const factors = c.rope_freq_factors;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const base = 1 / c.rope_theta ** ((2 * i) / c.head_dim);
    out[i] = factors ? base / factors[i] : base;
  }
  return out;
}

/**
 * What cos and sin of every RoPE angle are multiplied by (model_prep/rope.py cos_sin): config.rope_attn_factor
 * (format version 4: Phi-3's longrope attention factor) or 1.
 * @param {{rope_attn_factor?: number}} c  manifest.config
 * @returns {number}
 */
export function ropeScale(c) {
  return c.rope_attn_factor ?? 1;
}
