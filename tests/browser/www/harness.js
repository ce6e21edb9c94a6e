// harness.js: what the browser tests call through page.evaluate, as window.harness.*. Results are plain JSON.

import { EngineClient } from '/app/engine/client.js';
import { Engine } from '/app/engine/engine.js';
import { loadModel } from '/app/engine/gpu/model.js';
import { TUNING } from '/app/engine/gpu/pipelines.js';
import { probe } from '/app/engine/gpu/probe.js';

/** @type {Engine | null} the main-thread engine (ids and logits) */
let engine = null;
/** @type {EngineClient | null} the engine in its worker (the app's way) */
let client = null;

// Responsiveness probes: a 10 ms timer and animation frames, counted with their times (ms since page load).
/** @type {number[]} */
const ticks = [];
/** @type {number[]} */
const frames = [];
setInterval(() => ticks.push(performance.now()), 10);
const frame = () => {
  frames.push(performance.now());
  requestAnimationFrame(frame);
};
requestAnimationFrame(frame);

/** @param {string} name  a package folder under /models/ */
const packageUrl = (name) => `/models/${name}/`;

const harness = {
  /**
   * Loads a package into a main-thread Engine (engine "cpu": the WebAssembly engine, no GPU involved).
   * gpuTuning: run the WebGPU engine with the GPUs' kernel tunings (pipelines.js TUNING, with `gpuTuning`'s entries
   * laid over it as bench_engine.mjs --tuning does) instead of the CPU adapters' that SwiftShader gets, so that
   * Chromium's WGSL compiler builds and runs them here.
   * @param {string} name
   * @param {{context?: number, passTokens?: number, engine?: 'webgpu' | 'cpu', threads?: number,
   *          gpuTuning?: Record<string, object>}} [opts]
   */
  async loadEngine(name, opts = {}) {
    engine?.destroy();
    const tuning = opts.gpuTuning && { ...TUNING, ...opts.gpuTuning };
    engine = await Engine.create({
      engine: opts.engine ?? 'webgpu', gpu: opts.engine === 'cpu' ? null : navigator.gpu,
      baseUrl: packageUrl(name), shaderBaseUrl: '/webgpu_shaders/', context: opts.context,
      passTokens: opts.passTokens, threads: opts.threads,
      gpuLayer: tuning && { probe, loadModel: (/** @type {any} */ o) => loadModel({ ...o, tuning }) },
    });
    return { ...engine.info, tuning: /** @type {any} */ (engine).model?.stats?.tuning ?? null };
  },

  /** @param {any[]} messages */
  promptIds(messages) {
    return /** @type {Engine} */ (engine).promptIds(messages);
  },

  /**
   * Greedy ids, as model_prep.reference generate_ids (stops at EOS).
   * @param {number[]} prompt
   * @param {number} maxTokens
   */
  async generateIds(prompt, maxTokens) {
    const ids = [];
    for await (const id of /** @type {Engine} */ (engine).generateIds(prompt, { maxTokens })) ids.push(id);
    return ids;
  },

  /**
   * A whole prompt through the engine's KV session (reusing the cache, or a conversation kept in a KV slot): the
   * last position's logits and how many prompt tokens ran.
   * @param {number[]} ids
   */
  async prefill(ids) {
    const session = /** @type {Engine} */ (engine).session;
    const step = await session.prefill(ids, { logits: true });
    return { logits: Array.from(/** @type {Float32Array} */ (step.logits)), prefilled: session.prefilled };
  },

  /**
   * Logits of the last id after running ids at positions pos..
   * @param {number[]} ids
   * @param {number} pos
   */
  async logits(ids, pos) {
    return Array.from(await /** @type {Engine} */ (engine).logits(ids, pos));
  },

  /**
   * One Model.forward of the main-thread engine's GPU model under a token mask (null: none): its token, logprob and
   * (with wantLogits) raw logits, or the error's name and message.
   * @param {number[]} ids
   * @param {number} pos
   * @param {number[] | null} mask  u32 words
   * @param {boolean} wantLogits
   */
  async maskedForward(ids, pos, mask, wantLogits) {
    const model = /** @type {any} */ (/** @type {Engine} */ (engine).model);
    try {
      const r = await model.forward(ids, pos, { mask: mask && Uint32Array.from(mask), logits: wantLogits });
      return { token: r.token, logprob: r.logprob, logits: r.logits ? Array.from(r.logits) : null };
    } catch (e) {
      return { error: { name: /** @type {Error} */ (e).name, message: /** @type {Error} */ (e).message } };
    }
  },

  /**
   * Starts the worker engine on a package; returns its info and the progress events seen.
   * @param {string} name
   */
  async startWorker(name) {
    client?.destroy();
    /** @type {any[]} */
    const progress = [];
    client = await EngineClient.create({
      baseUrl: packageUrl(name), shaderBaseUrl: '/webgpu_shaders/', onProgress: (p) => progress.push(p),
    });
    return { info: client.info, progress };
  },

  /**
   * One request through the worker; a stream is collected with each chunk's arrival time. With abortAfter, the
   * request is aborted once that many content chunks have arrived; with abortBefore, before it is made; with
   * abortAfterMs, that long after it is made; with breakAfter, the page stops reading after that many content
   * chunks (no signal). Also returns the responsiveness counters over
   * the request's span.
   * @param {any} request
   * @param {{abortAfter?: number, abortBefore?: boolean, abortAfterMs?: number, breakAfter?: number}} [opts]
   */
  async workerChat(request, opts = {}) {
    const c = /** @type {EngineClient} */ (client);
    const controller = new AbortController();
    const start = performance.now();
    const tick0 = ticks.length, frame0 = frames.length;
    /** @type {any[]} */
    const chunks = [];
    /** @type {number[]} */
    const times = [];
    /** @type {any} */
    let completion = null;
    /** @type {{name: string, message: string} | null} */
    let error = null;
    if (opts.abortBefore) controller.abort();
    if (opts.abortAfterMs !== undefined) setTimeout(() => controller.abort(), opts.abortAfterMs);
    try {
      if (request.stream) {
        let content = 0;
        for await (const chunk of await c.chat.completions.create({ ...request, signal: controller.signal })) {
          chunks.push(chunk);
          times.push(performance.now());
          if (chunk.choices[0]?.delta?.content) content += 1;
          if (opts.abortAfter && content === opts.abortAfter) controller.abort();
          if (opts.breakAfter && content === opts.breakAfter) break;
        }
      } else {
        completion = await c.chat.completions.create({ ...request, signal: controller.signal });
      }
    } catch (e) {
      error = { name: /** @type {Error} */ (e).name, message: /** @type {Error} */ (e).message };
    }
    const end = performance.now();
    const span = ticks.slice(tick0);
    const gaps = span.slice(1).map((t, i) => t - span[i]);
    return {
      chunks, times, completion, error, start, end,
      ticks: span.length, frames: frames.length - frame0, maxTickGapMs: Math.max(0, ...gaps),
    };
  },
};

Object.assign(window, { harness });
/** @type {HTMLElement} */ (document.getElementById('status')).textContent = 'ready';
