// Benchmark the CPU engine (app/engine/cpu: cpu_engine.c in WebAssembly + SIMD128) under Node: prefill
// and decode tokens/s for a package, and (--reference) the numpy reference engine on the same token ids in the same
// run, interleaved (cpu, reference, cpu, reference, ...), with OPENBLAS_NUM_THREADS=1 (one thread each: the fair
// comparison, and the reference's best on a shared 2-core machine, docs/EVAL.md).
//
// Usage:
//   node scripts/bench_cpu_engine.mjs --package build/models/smollm2-135m-instruct.q4_1 [--prefill 128]
//     [--decode 64] [--repeats 3] [--context 1024] [--pass-tokens 128] [--threads 1,2] [--reference] [--json out.json]
// --threads: one model per thread count (cpu_engine_mt.wasm for more than one), run interleaved with the others.
// The prompt is --prefill fixed pseudo-random token ids; decode continues greedily from it (forward of one token at a
// time, as engine.js does) and prints the greedy ids' FNV-1a hash: the reference must print the same. Figures are the
// median over the repeats; one line a figure. Each figure is given twice: tokens per second of wall time, and per
// second of the process's own CPU time (user + system: on a shared machine the wall figure mostly says how much of
// a core the process got; the CPU-time figure is what it would do with a whole core). Rebuilds the .wasm first.

import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { loadModel } from '../app/engine/cpu/model.js';
import { fileFetch } from './bench_node.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    package: { type: 'string', default: join(ROOT, 'build/models/smollm2-135m-instruct.q4_1') },
    prefill: { type: 'string', default: '128' },
    decode: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '3' },
    context: { type: 'string', default: '1024' },
    'pass-tokens': { type: 'string', default: '128' },
    threads: { type: 'string', default: '1' },
    reference: { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const prefillN = Number(args.prefill), decodeN = Number(args.decode), repeats = Number(args.repeats);
const context = Number(args.context);
const pkgDir = resolve(String(args.package));

/** FNV-1a over token ids. @param {number[]} ids */
function fnv(ids) {
  let h = 0x811c9dc5;
  for (const id of ids) h = Math.imul(h ^ id, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** @param {number[]} xs */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

execFileSync(join(ROOT, 'scripts/build_wasm.sh'), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
const wasm = readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine.wasm'));
const t0 = performance.now();
const threadCounts = String(args.threads).split(',').map(Number);
const wasmThreads = readFileSync(join(ROOT, 'app/engine/cpu/cpu_engine_mt.wasm'));
const models = [];
for (const threads of threadCounts) {
  models.push(await loadModel({ baseUrl: pathToFileURL(`${pkgDir}/`), fetch: fileFetch, wasm, wasmThreads, context,
    passTokens: Number(args['pass-tokens']), threads }));
}
const model = models[0];
const loadS = (performance.now() - t0) / 1000 / models.length;
const vocab = model.config.vocab_size;
const prompt = Array.from({ length: prefillN }, (_, i) => (i * 7919 + 13) % vocab);

/** Seconds of this process's CPU time (user + system) since `since`. @param {NodeJS.CpuUsage} since */
const cpuSeconds = (since) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};

/** One run of the CPU engine: prefill and decode tokens/s (wall and CPU time: all its threads'), greedy ids.
 * @param {import('../app/engine/cpu/model.js').Model} model */
async function cpuRun(model) {
  let t = performance.now(), c = process.cpuUsage();
  let r = await model.forward(prompt, 0);
  const prefill = prefillN / ((performance.now() - t) / 1000), prefillCpu = prefillN / cpuSeconds(c);
  const ids = [r.token];
  t = performance.now();
  c = process.cpuUsage();
  for (let i = 0; i < decodeN - 1; i++) {
    r = await model.forward([r.token], prefillN + i);
    ids.push(r.token);
  }
  const decode = (decodeN - 1) / ((performance.now() - t) / 1000), decodeCpu = (decodeN - 1) / cpuSeconds(c);
  return { prefill, decode, prefillCpu, decodeCpu, ids };
}

const REFERENCE = `
import json, sys, time
import numpy as np
sys.path.insert(0, ${JSON.stringify(ROOT)})
from model_prep.reference import load
req = json.loads(sys.argv[1])
e = load(req["package"], context=req["context"])
t, c = time.perf_counter(), time.process_time()
logits = e.logits(req["prompt"], 0)
n = len(req["prompt"])
prefill, prefill_cpu = n / (time.perf_counter() - t), n / (time.process_time() - c)
ids = [int(np.argmax(logits))]
t, c = time.perf_counter(), time.process_time()
for i in range(req["decode"] - 1):
    ids.append(int(np.argmax(e.logits([ids[-1]], n + i))))
k = req["decode"] - 1
print(json.dumps({"prefill": prefill, "decode": k / (time.perf_counter() - t), "prefillCpu": prefill_cpu,
                  "decodeCpu": k / (time.process_time() - c), "ids": ids}))
`;

/** One run of the numpy reference engine in a fresh process (its load is not timed). */
function referenceRun() {
  const python = join(process.env.FIELDLLM_VENV ?? join(ROOT, '.venv'), 'bin/python');
  const req = JSON.stringify({ package: pkgDir, context, prompt, decode: decodeN });
  const out = spawnSync(python, ['-c', REFERENCE, req], { env: { ...process.env, OPENBLAS_NUM_THREADS: '1' },
    encoding: 'utf8', maxBuffer: 64 << 20 });
  if (out.status !== 0) throw new Error(`reference run failed: ${out.stderr}`);
  return /** @type {Run} */ (JSON.parse(out.stdout));
}

console.log(`package: ${model.manifest.name} (${pkgDir}), heap ${(model.stats.heapBytes / 2 ** 20).toFixed(0)} MiB, ` +
  `load ${loadS.toFixed(2)} s; ${cpus().length} CPUs (${cpus()[0]?.model}); Node ${process.version}; ` +
  `load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
/** @typedef {{prefill: number, decode: number, prefillCpu: number, decodeCpu: number, ids: number[]}} Run */
/** @type {Record<string, Run[]>} engine ('cpu' for one thread, 'cpu-N' for N, 'reference') -> runs */
const runs = Object.fromEntries([...models.map((m) => [label(m), []]), ['reference', []]]);
/** @type {Record<string, string>} */
const hashes = {};
/** @param {import('../app/engine/cpu/model.js').Model} m */
function label(m) {
  return m.stats.threads === 1 ? 'cpu' : `cpu-${m.stats.threads}`;
}
for (let k = 0; k < repeats; k++) {
  for (const m of models) {
    const c = await cpuRun(m);
    runs[label(m)].push(c);
    hashes[label(m)] = fnv(c.ids);
  }
  if (args.reference) {
    const r = referenceRun();
    runs.reference.push(r);
    hashes.reference = fnv(r.ids);
  }
}
const fmt = (/** @type {number[]} */ xs) => `${median(xs).toFixed(1)} tok/s (${xs.map((x) => x.toFixed(1)).join(' / ')})`;
/** @type {('prefill' | 'decode' | 'prefillCpu' | 'decodeCpu')[]} */
const FIGURES = ['prefill', 'decode', 'prefillCpu', 'decodeCpu'];
/** @param {Run[]} rs */
const medians = (rs) => Object.fromEntries(FIGURES.map((f) => [f, median(rs.map((r) => r[f]))]));
const out = {
  package: model.manifest.name, prefill_tokens: prefillN, decode_tokens: decodeN, repeats, load_average: loadavg(),
  ...Object.fromEntries(models.map((m) => [label(m), medians(runs[label(m)])])),
  reference: args.reference ? medians(runs.reference) : null, hashes,
};
const LABEL = { prefill: `prefill (${prefillN} tokens), wall`, decode: `decode (${decodeN} tokens), wall`,
  prefillCpu: 'prefill, per CPU second', decodeCpu: 'decode, per CPU second' };
for (const engine of [...models.map(label), ...(args.reference ? ['reference'] : [])]) {
  for (const f of FIGURES) console.log(`${engine} ${LABEL[f]}: ${fmt(runs[engine].map((r) => r[f]))}`);
}
/** @type {Record<string, Record<string, number>>} */
const byEngine = /** @type {any} */ (out);
for (const m of models.slice(1)) {
  const cpu = byEngine[label(m)], one = byEngine[label(model)];
  console.log(`${label(m)} / ${label(model)}: ${FIGURES.map((f) => `${f} ${(cpu[f] / one[f]).toFixed(2)}x`).join(', ')}`);
}
if (out.reference) {
  const ref = out.reference;
  for (const m of models) {
    const cpu = byEngine[label(m)];
    console.log(`${label(m)} / reference: ${FIGURES.map((f) => `${f} ${(cpu[f] / ref[f]).toFixed(2)}x`).join(', ')}`);
  }
}
const equal = new Set(Object.values(hashes)).size === 1;
console.log(`greedy ids fnv1a: ${Object.entries(hashes).map(([k, v]) => `${k} ${v}`).join(', ')}` +
  (Object.keys(hashes).length > 1 ? (equal ? ' (equal)' : ' (DIFFERENT)') : ''));
console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
if (args.json) writeFileSync(String(args.json), JSON.stringify(out, null, 2));
// stops each model's worker threads (else they keep Node alive)
for (const m of models) m.destroy();
