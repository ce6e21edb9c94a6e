// app/engine/gpu/rope.js against model_prep/rope.py: the same RoPE inverse frequencies for the same manifest config
// (plain RoPE and Llama 3.x "llama3" scaling, whose per-frequency divisors Python computes and the manifest carries),
// the longrope attention factor on cos and sin (ropeScale, as rope.py cos_sin), and gpu/package.js's checks on
// config.rope_freq_factors (format version 2), qk_norm (3) and rope_attn_factor (4).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

import { FormatError } from '../../app/engine/gpu/errors.js';
import { SUPPORTED_FORMAT_VERSIONS, checkManifest } from '../../app/engine/gpu/package.js';
import { ropeInvFreq, ropeScale } from '../../app/engine/gpu/rope.js';
import { ROOT, pythonPath } from './helpers/python.js';

// [theta, head_dim, llama3 parameters or null]: SmolLM2-like plain, Llama 3.2-like (theta 500000, factor 32), tiny
const CASES = [
  [100000, 64, null],
  [500000, 64, { factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }],
  [500000, 128, { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }],
  [10000, 16, { factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 }],
];

/** Python's config (as prepare writes it into the manifest) and inverse frequencies for every case. */
function pythonSide() {
  const script = `
import json, sys
from model_prep import rope
out = []
for theta, d, p in json.load(sys.stdin):
    f = rope.llama3_factors(theta, d, **p) if p else None
    out.append({"config": {"rope_theta": float(theta), "head_dim": d, **({"rope_freq_factors": f} if f else {})},
                "inv_freq": rope.inv_freq(theta, d, f).tolist()})
print(json.dumps(out))`;
  return JSON.parse(execFileSync(pythonPath(), ['-c', script], { cwd: ROOT, input: JSON.stringify(CASES) }).toString());
}

test('ropeInvFreq gives model_prep/rope.py inverse frequencies for the same config', () => {
  for (const { config, inv_freq: want } of pythonSide()) {
    const got = ropeInvFreq(config);
    assert.equal(got.length, config.head_dim / 2);
    for (let i = 0; i < want.length; i++) {
      // same float64 operations; Math.pow and numpy's power may differ in the last bit
      assert.ok(Math.abs(got[i] - want[i]) <= 4e-16 * want[i], `theta ${config.rope_theta} i ${i}: ${got[i]} vs ${want[i]}`);
    }
    if (config.rope_freq_factors) {
      assert.notDeepEqual([...got], [...ropeInvFreq({ ...config, rope_freq_factors: undefined })]); // it is applied
    }
  }
});

test('ropeScale: cos and sin times config.rope_attn_factor, as rope.py cos_sin (Phi-3 longrope)', () => {
  const config = { rope_theta: 10000, head_dim: 16, rope_freq_factors: [1, 1.05, 1.2, 1.4, 1.9, 2.5, 3.3, 4.1],
    rope_attn_factor: Math.sqrt(1 + Math.log(4) / Math.log(64)) };
  const script = `
import json, sys
from model_prep import rope
c = json.load(sys.stdin)
cos, sin = rope.cos_sin(c["rope_theta"], c["head_dim"], c["rope_freq_factors"], c["rope_attn_factor"], 64)
print(json.dumps({"cos": cos.tolist(), "sin": sin.tolist()}))`;
  const want = JSON.parse(execFileSync(pythonPath(), ['-c', script], { cwd: ROOT, input: JSON.stringify(config) })
    .toString());
  assert.equal(ropeScale({}), 1);
  const inv = ropeInvFreq(config);
  const scale = ropeScale(config);
  for (let p = 0; p < 64; p++) {
    for (let i = 0; i < 8; i++) { // the engines' tables: f64, times the factor, rounded to f32 once
      assert.equal(Math.fround(Math.cos(p * inv[i]) * scale), want.cos[p][i], `cos p ${p} i ${i}`);
      assert.equal(Math.fround(Math.sin(p * inv[i]) * scale), want.sin[p][i], `sin p ${p} i ${i}`);
    }
  }
});

test('package.js reads format versions 2, 3 and 4 and checks rope_freq_factors, qk_norm and rope_attn_factor', () => {
  assert.deepEqual([...SUPPORTED_FORMAT_VERSIONS], [1, 2, 3, 4, 5]);
  const config = {
    architecture: 'llama', vocab_size: 8, hidden_size: 64, intermediate_size: 128, num_layers: 1, num_heads: 4,
    num_kv_heads: 2, head_dim: 16, rms_norm_eps: 1e-5, rope_theta: 10000, rope_layout: 'half', context_length: 256,
    tie_word_embeddings: true, attention_bias: false,
  };
  /** @param {number} version @param {Record<string, unknown>} extra */
  const manifest = (version, extra) => ({ format: 'fieldllm-model', format_version: version, name: 't',
    config: { ...config, ...extra }, tensors: {}, files: [] });
  const factors = Array.from({ length: 8 }, (_, i) => 1 + i);
  assert.doesNotThrow(() => checkManifest(manifest(1, {})));
  assert.doesNotThrow(() => checkManifest(manifest(2, { rope_freq_factors: factors })));
  assert.throws(() => checkManifest(manifest(1, { rope_freq_factors: factors })), FormatError); // v1 cannot hold them
  assert.throws(() => checkManifest(manifest(2, { rope_freq_factors: factors.slice(1) })), FormatError);
  assert.throws(() => checkManifest(manifest(2, { rope_freq_factors: [...factors.slice(1), 0] })), FormatError);
  assert.throws(() => checkManifest(manifest(6, {})), FormatError);
  // version 3: qk_norm (qwen3); a reader of 1 or 2 would ignore it, so such a manifest is refused
  assert.doesNotThrow(() => checkManifest(manifest(3, { architecture: 'qwen3', qk_norm: true })));
  assert.doesNotThrow(() => checkManifest(manifest(3, { qk_norm: true, rope_freq_factors: factors })));
  assert.throws(() => checkManifest(manifest(2, { qk_norm: true })), FormatError);
  assert.throws(() => checkManifest(manifest(3, { qk_norm: 'yes' })), FormatError);
  // version 4: rope_attn_factor (phi3's longrope); a reader of 1-3 would rotate without it
  const phi3 = { architecture: 'phi3', rope_freq_factors: factors, rope_attn_factor: 1.15 };
  assert.doesNotThrow(() => checkManifest(manifest(4, phi3)));
  assert.throws(() => checkManifest(manifest(3, phi3)), FormatError);
  assert.throws(() => checkManifest(manifest(4, { ...phi3, rope_attn_factor: 0 })), FormatError);
  assert.throws(() => checkManifest(manifest(4, { ...phi3, rope_attn_factor: '1.1' })), FormatError);
});
