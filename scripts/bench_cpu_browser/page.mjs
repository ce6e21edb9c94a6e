// page.mjs: the in-page half of scripts/bench_cpu_browser.py. One engine per page load (a fresh page each run, so no
// run inherits another's heap or warm caches): window.benchOurs(...) or window.benchWllama(...), each returning
// {engine, threads, prefillTokens, prefillTps, decodeTokens, decodeTps, crossOriginIsolated}.
//
// Ours: app/engine/cpu/model.js on the prepared package; prefill = one forward() over the prompt ids, decode = greedy
// forward() of one token at a time (what engine.js does), timed with performance.now() around the calls (JS call
// overhead included). wllama: @wllama/wllama (llama.cpp in WebAssembly) on the GGUF the package was prepared from,
// n_gpu_layers 0 (CPU only), createCompletion with ignore_eos and temperature 0; its figures are llama.cpp's own
// timings (prompt_ms, predicted_ms: measured inside the wasm, so they leave out the message passing that ours counts).

import { loadModel } from '../../app/engine/cpu/model.js';

/**
 * @param {{packageUrl: string, ids: number[], decode: number, threads: number, context: number}} o
 */
async function benchOurs(o) {
  const model = await loadModel({ baseUrl: new URL(o.packageUrl, location.href), context: o.context,
    threads: o.threads });
  try {
    await model.forward(o.ids.slice(0, 8), 0); // warm-up: the first call compiles and touches the weights
    let t = performance.now();
    let { token } = await model.forward(o.ids, 0);
    const prefillMs = performance.now() - t;
    t = performance.now();
    for (let i = 0; i < o.decode; i++) ({ token } = await model.forward([token], o.ids.length + i));
    const decodeMs = performance.now() - t;
    return {
      engine: 'ours', threads: /** @type {any} */ (model).stats?.threads ?? 1, prefillTokens: o.ids.length,
      prefillTps: o.ids.length / (prefillMs / 1000), decodeTokens: o.decode, decodeTps: o.decode / (decodeMs / 1000),
      crossOriginIsolated,
    };
  } finally {
    model.destroy();
  }
}

/**
 * wllama 3.x: createCompletion with llama.cpp's own timings.
 * @param {{ggufUrl: string, wllamaBase: string, prompt: string, decode: number, threads: number, context: number}} o
 */
async function benchWllama3(o) {
  const { Wllama } = await import(`${o.wllamaBase}esm/index.js`);
  const wllama = new Wllama({ default: new URL(`${o.wllamaBase}esm/wasm/wllama.wasm`, location.href).href },
    { allowOffline: true, logger: quietLogger() });
  await wllama.loadModelFromUrl(new URL(o.ggufUrl, location.href).href, {
    n_threads: o.threads, n_gpu_layers: 0, n_ctx: o.context, n_batch: 512, useCache: false,
  });
  try {
    await wllama.createCompletion({ prompt: 'Hello', max_tokens: 2, temperature: 0, cache_prompt: false }); // warm-up
    const r = /** @type {any} */ (await wllama.createCompletion({
      prompt: o.prompt, max_tokens: o.decode, temperature: 0, ignore_eos: true, cache_prompt: false, stream: false,
    }));
    const tm = r.timings;
    return {
      engine: 'wllama', threads: o.threads, prefillTokens: tm.prompt_n, prefillTps: tm.prompt_n / (tm.prompt_ms / 1000),
      decodeTokens: tm.predicted_n, decodeTps: tm.predicted_n / (tm.predicted_ms / 1000), crossOriginIsolated,
      multithread: wllama.isMultithread?.() ?? null, timing: 'llama.cpp timings',
    };
  } finally {
    await wllama.exit();
  }
}

/**
 * wllama 2.x: its low-level API, timed in the page like ours: decode(prompt ids), then samplingSample + decode of one
 * token at a time (greedy: temp 0).
 * @param {{ggufUrl: string, wllamaBase: string, prompt: string, decode: number, threads: number, context: number}} o
 */
async function benchWllama2(o) {
  const { Wllama } = await import(`${o.wllamaBase}esm/index.js`);
  const at = (/** @type {string} */ p) => new URL(`${o.wllamaBase}esm/${p}`, location.href).href;
  const wllama = new Wllama({ 'single-thread/wllama.wasm': at('single-thread/wllama.wasm'),
    'multi-thread/wllama.wasm': at('multi-thread/wllama.wasm') }, { allowOffline: true, logger: quietLogger() });
  await wllama.loadModelFromUrl(new URL(o.ggufUrl, location.href).href, {
    n_threads: o.threads, n_ctx: o.context, n_batch: 512, useCache: false,
  });
  try {
    const ids = await wllama.tokenize(o.prompt, true);
    await wllama.samplingInit({ temp: 0 });
    await wllama.decode(ids.slice(0, 8), {}); // warm-up
    await wllama.kvClear();
    let t = performance.now();
    await wllama.decode(ids, {});
    const prefillMs = performance.now() - t;
    t = performance.now();
    for (let i = 0; i < o.decode; i++) {
      const { token } = await wllama.samplingSample();
      await wllama.samplingAccept([token]);
      await wllama.decode([token], {});
    }
    const decodeMs = performance.now() - t;
    return {
      engine: 'wllama', threads: o.threads, prefillTokens: ids.length, prefillTps: ids.length / (prefillMs / 1000),
      decodeTokens: o.decode, decodeTps: o.decode / (decodeMs / 1000), crossOriginIsolated,
      multithread: wllama.isMultithread?.() ?? null, timing: 'page clock',
    };
  } finally {
    await wllama.exit();
  }
}

function quietLogger() {
  const quiet = { debug() {}, log() {}, warn() {}, error: console.error };
  return /** @type {any} */ (globalThis).WLLAMA_LOG ? console : quiet;
}

/** @param {any} o */
const benchWllama = (o) => (o.wllamaMajor >= 3 ? benchWllama3(o) : benchWllama2(o));

Object.assign(globalThis, { benchOurs, benchWllama });
document.title = 'ready';
