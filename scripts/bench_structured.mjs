// What constrained decoding costs the browser engine: decode tokens/s with and without a grammar, same process, same
// GPU (Node + Dawn), through the engine's OpenAI API as the app calls it (greedy: the mask is applied in the argmax
// kernel, the token's log-probability comes with it; no logits are read back).
//
// Usage (on the GPU machine, after `source .device/on-device.sh`; the package needs a real tokenizer, e.g.
// `python3 scripts/make_synthetic_package.py --shape smollm2-135m --like PACKAGE --out /tmp/smol`):
//   node scripts/bench_structured.mjs --package /tmp/smol [--tokens 128] [--repeats 3] [--json out.json]
// Both sides decode exactly --tokens tokens from the same prompt (the schema's one string field has a minimum length
// beyond that), alternating free / constrained; timings.predicted_per_second (prefill excluded). Also the CPU part
// alone: web-xgrammar's accept + next mask per token, timed over the same kind of answer without the GPU.

import { readFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { create, globals } from 'webgpu';
import { fileFetch } from './bench_node.mjs';

Object.assign(globalThis, globals);
const { Engine } = await import('../app/engine/engine.js');

const { values: args } = parseArgs({
  options: {
    package: { type: 'string' },
    tokens: { type: 'string', default: '128' },
    repeats: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
if (!args.package) throw new Error('--package DIR is required');
const tokens = Number(args.tokens);

const SCHEMA = {
  type: 'object', additionalProperties: false, required: ['notes'],
  properties: { notes: { type: 'string', minLength: 4000, maxLength: 8000 } },
};
const messages = [{ role: 'user', content: 'Write maintenance notes for mud pump P-3 after a pressure excursion.' }];
const root = new URL('../', import.meta.url);
const engine = await Engine.create({
  gpu: create([]), baseUrl: pathToFileURL(`${args.package}/`), shaderBaseUrl: new URL('webgpu_shaders/', root),
  fetch: /** @type {typeof fetch} */ (fileFetch), context: 1024,
  onProgress: (p) => { if (p.stage !== 'weights') console.error(`load: ${p.stage}`); },
});

// the app's own fault-card request (app/field taskRequest): enums, bounded arrays and strings, the real mask work
const { loadRules, loadTasks, taskRequest } = await import('../app/field/index.js');
const fieldDir = new URL('app/field/', root);
const rules = loadRules(await readFile(new URL('rules.json', fieldDir), 'utf8'));
const tasks = loadTasks(await readFile(new URL('tasks.json', fieldDir), 'utf8'));
const card = taskRequest('fault', 'Mud pump P-3 discharge 5,200 psi, vibration 5.8 mm/s.', [], rules, tasks);

/** @param {boolean} constrained */
async function run(constrained) {
  const reply = await engine.chat.completions.create({
    messages, max_tokens: tokens, temperature: 0,
    ...(constrained ? { response_format: { type: 'json_schema', json_schema: { name: 'notes', schema: SCHEMA } } } : {}),
  });
  const t = /** @type {any} */ (reply).timings;
  if (t.predicted_n !== tokens) throw new Error(`decoded ${t.predicted_n} tokens, not ${tokens}: the answer ended early`);
  return t.predicted_per_second;
}

/** The fault card, constrained: decode tokens/s over however many tokens the card took. */
async function runCard() {
  const reply = /** @type {any} */ (await engine.chat.completions.create({ ...card, stream: false }));
  return { tok_s: reply.timings.predicted_per_second, tokens: reply.timings.predicted_n,
    finish: reply.choices[0].finish_reason };
}

await run(false); // warm-up: pipelines, the grammar compile
console.error('free decode ran');
await run(true);
console.error('constrained decode ran');
await runCard();
const free = [];
const constrained = [];
const cards = [];
for (let r = 0; r < Number(args.repeats); r++) {
  free.push(await run(false));
  constrained.push(await run(true));
  cards.push(await runCard());
}

// the CPU part alone: accept a token, then the next mask, over the ids of a constrained answer
const grammars = await engine.grammars();
let cpuPerToken = null;
{
  const { GrammarSpec } = await import('../app/engine/grammar.js');
  const spec = GrammarSpec.jsonSchema(SCHEMA);
  const probe = await grammars.constraint(spec);
  const ids = [];
  for (let i = 0; i < tokens; i++) {
    const mask = await probe.bitmask();
    let id = 0;
    while (!(mask[id >>> 5] & (1 << (id & 31)))) id++; // the lowest allowed id: a valid walk through the grammar
    probe.accept(id);
    ids.push(id);
  }
  const walk = await grammars.constraint(spec);
  const t0 = performance.now();
  for (const id of ids) {
    await walk.bitmask();
    walk.accept(id);
  }
  cpuPerToken = (performance.now() - t0) / ids.length;
}

const median = (/** @type {number[]} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const result = {
  package: args.package, adapter: engine.info.adapter, tokens, repeats: Number(args.repeats),
  free_tok_s: median(free), constrained_tok_s: median(constrained), free_runs: free, constrained_runs: constrained,
  constrained_over_free: median(constrained) / median(free),
  card_tok_s: median(cards.map((c) => c.tok_s)), card_runs: cards,
  card_over_free: median(cards.map((c) => c.tok_s)) / median(free),
  cpu_mask_ms_per_token: cpuPerToken,
};
for (const [k, v] of Object.entries(result)) if (!Array.isArray(v) && typeof v !== 'object') console.log(`${k.padEnd(24)} ${v}`);
console.log(JSON.stringify(result));
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 1));
engine.destroy();
