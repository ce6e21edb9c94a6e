// The CPU engine (app/engine/cpu/) on Llama 3.x "llama3" RoPE scaling (issue 12): a tiny random transformers
// checkpoint with an original context of 64, prepared at q4 (format version 2, config.rope_freq_factors), logits
// within 1e-3 of the numpy reference for a 100-token prefill and a decode step at position 100.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';

import { loadModel } from '../../app/engine/cpu/model.js';
import { fileFetch } from './helpers/file-fetch.js';
import { ROOT, pythonPath, scratchDir } from './helpers/python.js';

const SCRIPT = `
import json, sys
from pathlib import Path
sys.path[:0] = ["tests"]
from tiny_models import make_hf
from model_prep.plan import Options
from model_prep.prepare import prepare
from model_prep.reference import load
out = Path(sys.argv[1])
hf = make_hf(out / "hf", "llama", seed=3, rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
    "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
pkg = prepare(hf, out / "pkg", Options(weights="q4"))
ref = load(pkg, context=256)
ids = ref.tokenizer.encode("Generator 2 tripped on overcurrent; reset after inspection. " * 12).ids[:100]
first = ref.logits(ids, 0)
token = int(first.argmax())
steps = [{"ids": ids, "pos": 0, "logits": first.tolist()},
         {"ids": [token], "pos": 100, "logits": ref.logits([token], 100).tolist()}]
print(json.dumps({"package": str(pkg), "steps": steps}))
`;

test('llama3 RoPE scaling: CPU engine logits within 1e-3 of the reference past the original context', async () => {
  execFileSync(join(ROOT, 'scripts/build_wasm.sh'), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const wasm = readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine.wasm'));
  const out = join(scratchDir(), 'cpu-llama3');
  const { package: dir, steps } = JSON.parse(execFileSync(pythonPath(), ['-c', SCRIPT, out],
    { cwd: ROOT, maxBuffer: 64 << 20, env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } }).toString());
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  assert.equal(manifest.format_version, 2);
  const model = await loadModel({ baseUrl: pathToFileURL(`${dir}/`), fetch: fileFetch, wasm, context: 256 });
  for (const [k, step] of steps.entries()) {
    const { logits } = await model.forward(step.ids, step.pos, { logits: true });
    const got = /** @type {Float32Array} */ (logits);
    let err = 0;
    for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - step.logits[i]));
    assert.ok(err <= 1e-3, `step ${k}: max abs error ${err.toExponential(2)}`);
  }
  model.destroy();
});
