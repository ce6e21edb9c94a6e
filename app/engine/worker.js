// worker.js: the engine in a dedicated Web Worker, so that tokenizing, sampling, waiting on the GPU and the CPU
// engine's forward passes (WebAssembly: they hold this thread) never block the page. Start it as a module worker: new Worker(new URL('./worker.js', import.meta.url), {type: 'module'});
// client.js does that and speaks worker-protocol.js with it.

import { Engine } from './engine.js';
import { EngineError, serializeError } from './errors.js';
import { importVendor } from './vendor.js';

/** @typedef {import('./worker-protocol.js').ToWorker} ToWorker */
/** @typedef {import('./worker-protocol.js').FromWorker} FromWorker */

const scope = /** @type {DedicatedWorkerGlobalScope} */ (/** @type {unknown} */ (globalThis));

/** @type {Engine | null} */
let engine = null;
/** @type {AbortController | null} the load in progress */
let loading = null;
/** @type {Map<number, AbortController>} requests in progress, by id */
const running = new Map();

/** @param {FromWorker} message */
function post(message) {
  scope.postMessage(message);
}

/** @param {import('./worker-protocol.js').LoadOptions} options */
async function load(options) {
  if (engine || loading) {
    post({ type: 'load-error', error: { name: 'EngineError', message: 'this worker already has a model: unload first' } });
    return;
  }
  loading = new AbortController();
  try {
    const vendor = await importVendor(options.vendorUrls);
    engine = await Engine.create({
      engine: options.engine ?? 'webgpu', gpu: options.engine === 'cpu' ? null : scope.navigator.gpu,
      baseUrl: options.baseUrl, shaderBaseUrl: options.shaderBaseUrl, deviceMemory: options.deviceMemory, vendor,
      context: options.context, passTokens: options.passTokens, signal: loading.signal,
      onProgress: (progress) => post({ type: 'progress', progress }),
    });
    post({ type: 'loaded', info: engine.info });
  } catch (e) {
    post({ type: 'load-error', error: serializeError(e) });
  } finally {
    loading = null;
  }
}

/**
 * @param {number} id
 * @param {Omit<import('./request-options.js').ChatRequest, 'signal'>} request
 */
async function create(id, request) {
  const controller = new AbortController();
  running.set(id, controller);
  try {
    if (!engine) throw new EngineError('no model is loaded in the worker: load one first');
    const signal = controller.signal;
    if (request.stream) {
      const stream = await engine.chat.completions.create({ ...request, stream: true, signal });
      post({ type: 'stream-start', id });
      for await (const chunk of stream) post({ type: 'chunk', id, chunk });
      post({ type: 'end', id });
    } else {
      const completion = await engine.chat.completions.create({ ...request, stream: false, signal });
      post({ type: 'completion', id, completion });
    }
  } catch (e) {
    post({ type: 'error', id, error: serializeError(e) });
  } finally {
    running.delete(id);
  }
}

scope.addEventListener('message', (/** @type {MessageEvent} */ event) => {
  const message = /** @type {ToWorker} */ (event.data);
  switch (message.type) {
    case 'load':
      load(message.options);
      break;
    case 'abort-load':
      loading?.abort();
      break;
    case 'create':
      create(message.id, message.request);
      break;
    case 'abort':
      running.get(message.id)?.abort();
      break;
    case 'reset-cache':
      engine?.resetCache();
      break;
    case 'unload':
      for (const controller of running.values()) controller.abort();
      engine?.destroy();
      engine = null;
      post({ type: 'unloaded' });
      break;
  }
});
