// Time to first token of a repeated request with a long shared prefix (issue 10: a structured request's system
// prompt and schema), against that of a short prompt alone, in the same process on the same model.
//
//   node scripts/bench_prefix.mjs --package DIR [--engine cpu|webgpu] [--prefix 600] [--new 60] [--repeats 5]
//
// Three timings, each the median of --repeats, each through the engine's KV session (app/engine/kv-session.js) as a
// request would go, from the prefill call to its first token read back:
//   short    a --new-token prompt on an empty cache;
//   repeat   --prefix shared tokens + --new new ones, after a request with the same prefix and then another
//            conversation (a chat between two structured requests): its prefix comes back from a KV slot;
//   still in cache  the repeat with no chat in between (the prefix still in the cache: no copies), for scale;
//   no slots the same sequence with the model's KV slots turned off: the whole prompt runs again.
// Prints repeat / short (target <= 1.5) and no-slots / short. Token ids are fixed pseudo-random ids (the timing does
// not depend on what they say). --engine webgpu needs a GPU and Dawn (npm `webgpu`; on the GPU machine after
// `source .device/on-device.sh`); --engine cpu runs the WebAssembly engine (scripts/build_wasm.sh first).

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { KvSession } from '../app/engine/kv-session.js';
import { fileFetch } from './bench_node.mjs';

const { values: args } = parseArgs({
  options: {
    package: { type: 'string' },
    engine: { type: 'string', default: 'cpu' },
    prefix: { type: 'string', default: '600' },
    new: { type: 'string', default: '60' },
    repeats: { type: 'string', default: '5' },
    threads: { type: 'string', default: '1' },
  },
});
if (!args.package) throw new Error('--package DIR is required');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const baseUrl = pathToFileURL(`${args.package.replace(/\/$/, '')}/`);
const prefixN = Number(args.prefix), newN = Number(args.new), repeats = Number(args.repeats);
const context = 2048;

/** @type {any} Dawn's GPU object (--engine webgpu) */
let gpu = null;

/** @returns {Promise<any>} a loaded model of the chosen engine */
async function load() {
  if (args.engine === 'cpu') {
    const { loadModel } = await import('../app/engine/cpu/model.js');
    return loadModel({ baseUrl, fetch: fileFetch, context, threads: Number(args.threads),
      wasm: readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine.wasm')),
      wasmThreads: readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine_mt.wasm')) });
  }
  const { create, globals } = await import(/** @type {string} */ ('webgpu'));
  Object.assign(globalThis, globals);
  const { loadModel } = await import('../app/engine/gpu/model.js');
  const { probe } = await import('../app/engine/gpu/probe.js');
  const manifest = JSON.parse(await readFile(new URL('manifest.json', baseUrl), 'utf8'));
  gpu = create([]); // kept for the whole run: Dawn's GPU object must outlive its devices
  const pr = await probe(gpu, manifest, { context });
  if (!pr.ok || !pr.adapter) throw new Error(pr.reason ?? 'no adapter');
  console.log(`adapter: ${JSON.stringify(pr.info)}`);
  const device = await pr.adapter.requestDevice({ requiredLimits: pr.limits });
  return loadModel({ device, baseUrl, shaderBaseUrl: pathToFileURL(join(ROOT, 'webgpu_shaders/')),
    fetch: /** @type {any} */ (fileFetch), context });
}

const model = await load();
const vocab = model.config.vocab_size;
let seed = 1;
/** n pseudo-random token ids (away from the special ids at both ends of most vocabularies) @param {number} n */
const ids = (n) => Array.from({ length: n }, () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return 200 + (seed % (vocab - 400));
});
/** @param {number[]} xs */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Seconds from the prefill call to its first token. @param {KvSession} session @param {number[]} prompt */
async function ttft(session, prompt) {
  const t0 = performance.now();
  await session.prefill(prompt, false);
  return (performance.now() - t0) / 1000;
}

const slotPositions = model.kvSlotPositions;
const prefix = ids(prefixN);
/** @type {Record<string, number[]>} */
const runs = { short: [], repeat: [], noSlots: [], cached: [] };
const prefilled = { repeat: 0, noSlots: 0 };
await ttft(new KvSession(model), ids(newN)); // warm-up: pipelines, first-touch memory
for (let r = 0; r < repeats; r++) {
  const fresh = new KvSession(model);
  runs.short.push(await ttft(fresh, ids(newN)));
  const direct = new KvSession(model); // no chat in between: the prefix is still in the cache (no copies)
  await ttft(direct, [...prefix, ...ids(newN)]);
  runs.cached.push(await ttft(direct, [...prefix, ...ids(newN)]));
  for (const slots of [true, false]) {
    model.kvSlotPositions = slots ? slotPositions : 0;
    const session = new KvSession(model);
    await ttft(session, [...prefix, ...ids(newN)]); // the first structured request
    await ttft(session, ids(300)); // a chat in between
    const t = await ttft(session, [...prefix, ...ids(newN)]); // the next structured request
    runs[slots ? 'repeat' : 'noSlots'].push(t);
    prefilled[slots ? 'repeat' : 'noSlots'] = session.prefilled;
  }
}
model.kvSlotPositions = slotPositions;
const [short, repeat, noSlots, cached] = [median(runs.short), median(runs.repeat), median(runs.noSlots),
  median(runs.cached)];
const ms = (/** @type {number[]} */ xs) => xs.map((x) => (1000 * x).toFixed(1)).join(', ');
console.log(`engine ${args.engine}, package ${model.manifest.name}, prefix ${prefixN} + ${newN} new tokens, ` +
  `KV slots of ${slotPositions} positions`);
console.log(`short (${newN} tokens):       median ${(1000 * short).toFixed(1)} ms  (${ms(runs.short)})`);
console.log(`repeat, from a slot:     median ${(1000 * repeat).toFixed(1)} ms  (${ms(runs.repeat)}), ` +
  `${prefilled.repeat} tokens ran`);
console.log(`repeat, still in cache:  median ${(1000 * cached).toFixed(1)} ms  (${ms(runs.cached)}), ` +
  'no chat in between');
console.log(`repeat, no slots:        median ${(1000 * noSlots).toFixed(1)} ms  (${ms(runs.noSlots)}), ` +
  `${prefilled.noSlots} tokens ran`);
console.log(`repeat / short: ${(repeat / short).toFixed(2)}x (target <= 1.5)   no slots / short: ` +
  `${(noSlots / short).toFixed(2)}x`);
model.destroy();
if (gpu) process.exit(0); // Dawn's threads would keep Node alive
