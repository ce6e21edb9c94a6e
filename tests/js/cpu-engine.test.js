// The CPU engine (app/engine/cpu/: cpu_engine.c in WebAssembly, model.js) against the numpy reference engine:
// logits of tiny random models within 1e-3 (f32, q8, q4, q4 with q8 v, a GGUF Q4_1 source with the interleaved
// RoPE layout, tensors split over several shards; Qwen3's per-head q/k norm at q4 and from a GGUF Q8_0; Phi-3's
// longrope short factors and attention factor at q4; Gemma 3's scaled embedding, post-norms, GeGLU, attention scale,
// sliding layers of window 8 and RoPE base per layer type at q4; a GGUF of Q4_K / Q5_K / Q6_K / Q5_0 / Q8_0 carried
// as q4k / q5k / q6k / q8 in row chunks) for a prefill, a decode step and a prefill of several passes;
// greedy token ids of the default model (SmolLM2) equal to the reference's for three chats; the token mask; and
// engine.js answering on it. The .wasm is built first (scripts/build_wasm.sh: clang + lld); without them the tests
// fail, they never skip.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { loadModel } from '../../app/engine/cpu/model.js';
import { Engine } from '../../app/engine/engine.js';
import { KvSession, MIN_KEPT } from '../../app/engine/kv-session.js';
import { ContextError, GrammarError } from '../../app/engine/gpu/errors.js';
import { fileFetch } from './helpers/file-fetch.js';
import { ROOT, pythonPath, scratchDir, smollm2Package } from './helpers/python.js';
import { readPackage, vendor } from './helpers/vendor.js';

const CHATS = [
  [{ role: 'user', content: 'The cooling water pump on our generator is vibrating and the bearing is hot. ' +
    'What should I check, step by step?' }],
  [{ role: 'system', content: 'You are a triage assistant in a rural clinic.' },
    { role: 'user', content: 'A 4-year-old has had fever for three days and is breathing fast. ' +
      'What are the danger signs I should look for?' }],
  [{ role: 'user', content: 'What is the capital of France?' }],
];
const STEPS = 24;
const TOLERANCE = 1e-3;

/**
 * tests/js/helpers/cpu_oracle.py's answer to one command.
 * @param {string} command
 * @param {Record<string, unknown>} request
 * @returns {Promise<any>}
 */
function cpuOracle(command, request) {
  return new Promise((resolve, reject) => {
    const child = execFile(pythonPath(), [join(ROOT, 'tests/js/helpers/cpu_oracle.py')],
      { cwd: ROOT, maxBuffer: 256 << 20, env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`cpu_oracle.py ${command} failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      });
    child.stdin?.end(JSON.stringify({ command, ...request }));
  });
}

/** @type {Buffer} */
let wasm;
/** @type {Buffer} */
let wasmThreads;
/** @param {string} dir @param {object} [opts] */
const load = (dir, opts = {}) => loadModel({ baseUrl: pathToFileURL(`${dir}/`), fetch: fileFetch, wasm, wasmThreads, ...opts });

before(() => {
  // always rebuilt: a stale .wasm must not pass for the C source beside it (about a second)
  execFileSync(join(ROOT, 'scripts/build_wasm.sh'), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  wasm = readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine.wasm'));
  wasmThreads = readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine_mt.wasm'));
});

/** @param {Float32Array} got @param {number[]} want */
function maxAbsError(got, want) {
  assert.equal(got.length, want.length);
  let err = 0;
  for (let i = 0; i < got.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err;
}

/**
 * log-softmax of logits at `token` over the tokens `allowed` says (f64).
 * @param {Float32Array} logits
 * @param {number} token
 * @param {(i: number) => boolean} [allowed]
 */
function logSoftmaxAt(logits, token, allowed = () => true) {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) if (allowed(i)) m = Math.max(m, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) if (allowed(i)) sum += Math.exp(logits[i] - m);
  return logits[token] - m - Math.log(sum);
}

describe('tiny random models: logits within 1e-3 of the reference', () => {
  /** @type {Promise<any>} */
  let tiny;
  before(() => {
    tiny = cpuOracle('tiny', { out: join(scratchDir(), 'cpu-tiny') });
  });

  test('f32, q8, q4, q4+v8, GGUF q4_1 (interleaved), chunked shards, qwen3 q4 and GGUF q8_0, phi3 q4, gemma3 q4, GGUF K-quants; prefill, decode, several passes; 1 and 3 threads', async (t) => {
    const { cases } = await tiny;
    assert.equal(cases.length, 10);
    for (const [c, threads] of cases.flatMap((/** @type {any} */ c) => [[c, 1], [c, 3]])) {
      // 16 tokens per pass: the longer prompt takes several passes, and the passes end on partial 4-token blocks;
      // 3 threads: shares of unequal size (rows and heads that 3 does not divide)
      const model = await load(c.package, { context: 256, passTokens: 16, threads });
      assert.equal(model.stats.threads, threads);
      assert.ok(c.steps[2].ids.length > 32, 'the long prompt must take several passes');
      for (const [k, step] of c.steps.entries()) {
        const out = await model.forward(step.ids, step.pos, { logits: true });
        const logits = /** @type {Float32Array} */ (out.logits);
        const err = maxAbsError(logits, step.logits);
        assert.ok(err <= TOLERANCE, `${c.name} (${threads} threads) step ${k}: max abs error ${err.toExponential(2)}`);
        t.diagnostic(`${c.name} (${threads} threads) step ${k}: max abs error ${err.toExponential(2)}`);
        let best = 0;
        for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        assert.equal(out.token, best, `${c.name} step ${k}: the token is the argmax of the logits`);
        assert.ok(Math.abs(out.logprob - logSoftmaxAt(logits, best)) < 1e-5, `${c.name} step ${k}: logprob`);
      }
      model.destroy();
    }
  });

  test('the token mask: argmax and logprob over the allowed tokens; none allowed or a bad length throws', async () => {
    const c = (await tiny).cases.find((/** @type {any} */ x) => x.name === 'llama-q4');
    const model = await load(c.package, { context: 64 });
    const full = await model.forward(c.steps[0].ids, 0, { logits: true });
    const logits = /** @type {Float32Array} */ (full.logits);
    const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a]);
    const allowedIds = [order[3], order[7], order[40], logits.length - 1];
    const mask = new Uint32Array(model.maskWords);
    for (const i of allowedIds) mask[i >>> 5] |= 1 << (i & 31);
    const masked = await model.forward(c.steps[0].ids, 0, { mask });
    assert.equal(masked.token, order[3]);
    const expected = logSoftmaxAt(logits, order[3], (i) => allowedIds.includes(i));
    assert.ok(Math.abs(masked.logprob - expected) < 1e-5, `${masked.logprob} vs ${expected}`);
    await assert.rejects(model.forward([1], 0, { mask: new Uint32Array(model.maskWords) }), GrammarError);
    await assert.rejects(model.forward([1], 0, { mask: new Uint32Array(1) }), GrammarError);
    await assert.rejects(model.forward([1], 64), ContextError);
    await assert.rejects(model.forward([1e6], 0), ContextError);
    model.destroy();
    await assert.rejects(model.forward([1], 0), ContextError);
  });
});

describe('SmolLM2 (the default package)', () => {
  /** @type {string} */
  let dir;
  /** @type {import('../../app/engine/cpu/model.js').Model} */
  let model;
  /** @type {import('../../app/engine/cpu/model.js').Model} */
  let threaded;
  /** @type {Promise<any>} */
  let greedy;
  before(async () => {
    dir = await smollm2Package();
    greedy = cpuOracle('greedy', { package: dir, chats: CHATS, steps: STEPS, context: 512 });
    model = await load(dir, { context: 512, threads: 1 });
    threaded = await load(dir, { context: 512, threads: 2 });
    assert.equal(threaded.stats.threads, 2);
  });
  after(() => threaded.destroy());

  test('greedy token ids equal the reference engine\'s for three chats, 24 tokens, on 1 and 2 threads', async () => {
    const { prompts, expected } = await greedy;
    const eos = new Set(model.manifest.generation?.eos_token_ids ?? []);
    for (const [k, prompt, m] of prompts.flatMap((/** @type {number[]} */ p, /** @type {number} */ k) => [[k, p, model], [k, p, threaded]])) {
      /** @type {number[]} */
      const got = [];
      let pos = 0;
      let r = await m.forward(prompt, pos);
      pos += prompt.length;
      while (!eos.has(r.token)) {
        got.push(r.token);
        if (got.length === STEPS) break;
        r = await m.forward([r.token], pos++);
      }
      assert.deepEqual(got, expected[k], `chat ${k}, ${m.stats.threads} thread(s)`);
    }
    // the pump and triage answers are long; "Paris." ends at EOS early, and must end there on both sides alike
    assert.deepEqual(expected.map((/** @type {number[]} */ e) => e.length).slice(0, 2), [STEPS, STEPS]);
  });

  test('a conversation left for another comes back from a KV slot: the same greedy ids, only the last prompt token runs', async () => {
    const { prompts, expected } = await greedy;
    const eos = new Set(model.manifest.generation?.eos_token_ids ?? []);
    const session = new KvSession(model);
    /** @param {number[]} prompt */
    const answer = async (prompt) => {
      /** @type {number[]} */
      const got = [];
      let pos = prompt.length;
      let r = await session.prefill(prompt, false);
      while (!eos.has(r.token) && got.length < STEPS) {
        got.push(r.token);
        if (got.length < STEPS) r = await session.run([r.token], pos++, false);
      }
      return got;
    };
    const [pump, triage] = [prompts[0], prompts[1]]; // different system prompts: they share a few tokens only
    assert.ok(pump.length >= MIN_KEPT && triage.length >= MIN_KEPT);
    assert.deepEqual(await answer(pump), expected[0]);
    assert.equal(session.prefilled, pump.length);
    assert.deepEqual(await answer(triage), expected[1], 'the triage chat, after the pump chat was kept aside');
    assert.ok(session.kept && session.kept.ids.length >= pump.length, 'the pump chat is kept in a slot');
    assert.ok(session.prefilled > triage.length - 8, 'the triage prompt ran whole (a few shared tokens at most)');
    // back to the pump chat: its KV comes back from the slot; wrong or missing positions would change the answer
    assert.deepEqual(await answer(pump), expected[0], 'the pump chat again, from its slot');
    assert.equal(session.prefilled, 1);
    assert.deepEqual(await answer(triage), expected[1], 'the triage chat again, from the other slot');
    assert.equal(session.prefilled, 1);
    assert.equal(model.kvSlotPositions, 512);
  });

  test('engine.js answers on it unchanged (Engine.fromParts)', async () => {
    const { tokenizerJson } = readPackage(dir);
    const engine = Engine.fromParts({ model, vendor, tokenizerJson });
    const out = await engine.chat.completions.create({ messages: CHATS[2], max_tokens: 16 });
    assert.match(out.choices[0].message.content ?? '', /Paris/);
  });
});
