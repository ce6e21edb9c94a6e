// The CPU engine's K-quant matmul kernels (q4k / q5k / q6k: cpu_engine.c row_k45 / row_q6k) in the WebAssembly build
// (SIMD128), on their own through fe_matmul: random GGUF blocks packed by model_prep/kquants.py (two row chunks),
// inputs of 1, 3 and 6 tokens (decode, the 4-token blocks of a prompt and their remainder), against numpy's products
// with kquants.dequantize's weights (tests/js/helpers/cpu_oracle.py kquant_kernels). The .wasm is built first.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';

import { ROOT, pythonPath } from './helpers/python.js';

const STORAGE = { q4k: 3, q5k: 4, q6k: 5 }; // cpu_engine.h
const SLOT = 3 + 9; // layer 0's ffn_gate: any slot, fe_matmul reads only its tensor

/** @returns {Promise<any>} */
function kernelCases() {
  return new Promise((resolve, reject) => {
    const child = execFile(pythonPath(), [join(ROOT, 'tests/js/helpers/cpu_oracle.py')],
      { cwd: ROOT, maxBuffer: 256 << 20 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`cpu_oracle.py kquant_kernels failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      });
    child.stdin?.end(JSON.stringify({ command: 'kquant_kernels' }));
  });
}

/** @type {Buffer} */
let wasm;
before(() => {
  execFileSync(join(ROOT, 'scripts/build_wasm.sh'), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  wasm = readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine.wasm'));
});

test('q4k, q5k, q6k matmuls within 1e-5 (relative to the sum of the terms\' magnitudes) of numpy', async (t) => {
  const { cases } = await kernelCases();
  assert.equal(cases.length, 6);
  const instance = await WebAssembly.instantiate(await WebAssembly.compile(new Uint8Array(wasm)), {});
  const ex = /** @type {any} */ (instance.exports);
  // vocab 16, hidden 512, intermediate 768, 1 layer, 2 heads of 256, 1 KV head; 8 positions, 8 tokens a pass
  assert.equal(ex.fe_init(16, 512, 768, 1, 2, 1, 256, 1e-6, 16, 0, 0, 0, 8, 8), 0);
  /** @param {ArrayLike<number>} values @param {typeof Uint32Array | typeof Float32Array} Type */
  const put = (values, Type) => {
    const at = ex.fe_alloc(values.length * 4) >>> 0;
    assert.ok(at);
    new Type(ex.memory.buffer, at, values.length).set(values);
    return at;
  };
  for (const c of cases) {
    assert.equal(ex.fe_tensor(SLOT, STORAGE[/** @type {'q4k'} */ (c.storage)], c.rows, c.cols, c.chunks.length), 0);
    c.chunks.forEach((/** @type {any} */ ch, /** @type {number} */ i) => {
      const p = Object.fromEntries(Object.entries(ch.planes).map(([k, v]) => [k, put(/** @type {number[]} */ (v), Uint32Array)]));
      assert.equal(ex.fe_chunk(SLOT, i, ch.rows[0], ch.rows[1], p.qweight, p.super, p.qhigh ?? 0), 0);
    });
    for (const input of c.inputs) {
      const x = put(input.x, Float32Array);
      const y = ex.fe_alloc(input.T * c.rows * 4) >>> 0;
      assert.equal(ex.fe_matmul(SLOT, input.T, x, y), 0);
      const got = new Float32Array(ex.memory.buffer, y, input.T * c.rows);
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - input.expected[i]) / input.bound[i]);
      t.diagnostic(`${c.name}, ${input.T} tokens: relative error ${worst.toExponential(2)}`);
      assert.ok(worst <= 1e-5, `${c.name}, ${input.T} tokens: relative error ${worst.toExponential(2)}`);
    }
  }
});
