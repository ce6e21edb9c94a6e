// structured.js: what test_browser_structured.py calls through page.evaluate, as window.structured.*, on a page
// served under the app's Content-Security-Policy. The engine runs on the main thread (token ids) or in its worker
// (the app's way); the grammar library (@mlc-ai/web-xgrammar, WASM inlined) loads in either on first use.

import { EngineClient } from '/app/engine/client.js';
import { Engine } from '/app/engine/engine.js';

/** The npm libraries by URL (no import map under this CSP). */
const VENDOR_URLS = {
  tokenizers: new URL('/node_modules/@huggingface/tokenizers/dist/tokenizers.mjs', location.href).href,
  jinja: new URL('/node_modules/@huggingface/jinja/dist/index.js', location.href).href,
  xgrammar: new URL('/node_modules/@mlc-ai/web-xgrammar/lib/index.js', location.href).href,
};

/** @type {Engine | null} */
let engine = null;
/** @type {EngineClient | null} */
let client = null;

/** @param {unknown} e */
const failure = (e) => ({ error: { name: /** @type {Error} */ (e).name, message: /** @type {Error} */ (e).message } });

const structured = {
  /** @param {string} name  a package under /models/ */
  async loadEngine(name) {
    engine = await Engine.create({
      gpu: navigator.gpu, baseUrl: `/models/${name}/`, shaderBaseUrl: '/webgpu_shaders/', vendorUrls: VENDOR_URLS,
    });
    return engine.info;
  },

  /** @param {any[]} messages */
  promptIds(messages) {
    return /** @type {Engine} */ (engine).promptIds(messages);
  },

  /**
   * Greedy ids under a grammar spec's JSON ({kind, schema} or {kind, tag}), as generate_picks under a Constraint.
   * @param {number[]} prompt @param {number} maxTokens @param {any} grammar
   */
  async generateIds(prompt, maxTokens, grammar) {
    try {
      const ids = [];
      for await (const id of /** @type {Engine} */ (engine).generateIds(prompt, { maxTokens, grammar })) ids.push(id);
      return { ids };
    } catch (e) {
      return failure(e);
    }
  },

  /** @param {string} name */
  async startWorker(name) {
    client = await EngineClient.create({ baseUrl: `/models/${name}/`, shaderBaseUrl: '/webgpu_shaders/', vendorUrls: VENDOR_URLS });
    return client.info;
  },

  /** One request through the worker: its completion, or the error. @param {any} request */
  async workerChat(request) {
    try {
      return { completion: await /** @type {EngineClient} */ (client).chat.completions.create(request) };
    } catch (e) {
      return failure(e);
    }
  },
};

Object.assign(window, { structured });
/** @type {HTMLElement} */ (document.getElementById('status')).textContent = 'ready';
