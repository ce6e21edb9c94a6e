// client.js: the page's handle on the engine running in worker.js. Same API as Engine:
//   const engine = await EngineClient.create({baseUrl, shaderBaseUrl, onProgress});   // engine: 'cpu' for WebAssembly
//   for await (const chunk of await engine.chat.completions.create({messages, stream: true, signal})) ...
// The signal is forwarded (the worker stops between tokens); breaking out of a stream aborts it too.

import { WorkerError, abortError, deserializeError } from './errors.js';
import { resolveVendorUrls } from './vendor.js';

/** @typedef {import('./worker-protocol.js').FromWorker} FromWorker */
/** @typedef {import('./worker-protocol.js').ToWorker} ToWorker */
/** @typedef {import('./request-options.js').ChatRequest} ChatRequest */
/** @typedef {import('./openai-shapes.js').ChatCompletion} ChatCompletion */
/** @typedef {import('./openai-shapes.js').ChatCompletionChunk} ChatCompletionChunk */
/** @typedef {import('./engine.js').LoadProgress} LoadProgress */

/**
 * Chunks pushed by the worker, pulled by the page: an async iterable with an unbounded queue.
 * @template T
 */
class Inbox {
  constructor() {
    /** @type {T[]} */
    this.items = [];
    /** @type {(() => void) | null} wakes a waiting pull */
    this.wake = null;
    this.done = false;
    /** @type {unknown} */
    this.error = null;
  }

  /** @param {T} item */
  push(item) {
    this.items.push(item);
    this.notify();
  }

  /** @param {unknown} [error] */
  close(error = null) {
    this.done = true;
    this.error = error;
    this.notify();
  }

  notify() {
    this.wake?.();
    this.wake = null;
  }

  /** @returns {AsyncGenerator<T, void, void>} */
  async* drain() {
    for (;;) {
      if (this.items.length) {
        yield /** @type {T} */ (this.items.shift());
      } else if (this.done) {
        if (this.error) throw this.error;
        return;
      } else {
        await new Promise((resolve) => { this.wake = () => resolve(undefined); });
      }
    }
  }
}

/**
 * @typedef {object} Pending  one request the worker has not finished
 * @property {(value: any) => void} resolve
 * @property {(error: unknown) => void} reject
 * @property {Inbox<ChatCompletionChunk> | null} inbox  streams only
 * @property {boolean} settled  create() has resolved or rejected
 */

export class EngineClient {
  /**
   * Starts the worker and loads a package in it.
   * @param {object} opts
   * @param {'webgpu' | 'cpu'} [opts.engine]   which layer runs the model (default webgpu; choice.js decides)
   * @param {string | URL} opts.baseUrl        the model package folder (relative to the page is fine)
   * @param {string | URL} opts.shaderBaseUrl  the webgpu_shaders/ folder
   * @param {number | null} [opts.deviceMemory]  navigator.deviceMemory (the CPU probe's memory check)
   * @param {number} [opts.context]            KV positions
   * @param {number} [opts.passTokens]
   * @param {string | URL} [opts.workerUrl]    default: worker.js beside this module
   * @param {import('./vendor.js').VendorUrls} [opts.vendorUrls]  default: the page's import map's
   * @param {(p: LoadProgress) => void} [opts.onProgress]
   * @param {AbortSignal} [opts.signal]        aborts the load (and terminates the worker)
   * @returns {Promise<EngineClient>}
   */
  static async create(opts) {
    const here = typeof location === 'undefined' ? undefined : location.href;
    const worker = new Worker(opts.workerUrl ?? new URL('./worker.js', import.meta.url), { type: 'module' });
    const client = new EngineClient(worker);
    client.onProgress = opts.onProgress ?? null;
    const loaded = new Promise((resolve, reject) => { client.loadWaiter = { resolve, reject }; });
    const onAbort = () => {
      client.post({ type: 'abort-load' });
      client.fail(abortError('loading the model was aborted'));
    };
    if (opts.signal?.aborted) onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    client.post({
      type: 'load',
      options: {
        engine: opts.engine ?? 'webgpu', deviceMemory: opts.deviceMemory ?? null,
        baseUrl: new URL(String(opts.baseUrl), here).href, shaderBaseUrl: new URL(String(opts.shaderBaseUrl), here).href,
        vendorUrls: opts.vendorUrls ?? resolveVendorUrls(), context: opts.context, passTokens: opts.passTokens,
      },
    });
    try {
      client.info = await loaded;
    } catch (e) {
      worker.terminate();
      throw e;
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    return client;
  }

  /** @param {Worker} worker */
  constructor(worker) {
    this.worker = worker;
    /** @type {import('./engine.js').Engine['info'] | null} */
    this.info = null;
    /** @type {((p: LoadProgress) => void) | null} */
    this.onProgress = null;
    /** @type {{resolve: (info: any) => void, reject: (e: unknown) => void} | null} */
    this.loadWaiter = null;
    /** @type {Map<number, Pending>} */
    this.pending = new Map();
    this.nextId = 1;
    /** @type {unknown} set once the worker is unusable */
    this.broken = null;
    worker.onmessage = (event) => this.receive(/** @type {FromWorker} */ (event.data));
    worker.onerror = (event) => {
      event.preventDefault();
      this.fail(new WorkerError(`the engine worker failed: ${event.message || 'it could not start (check the ' +
        'browser console: a module failed to load?)'}`));
    };
    worker.onmessageerror = () => this.fail(new WorkerError('a message from the engine worker could not be read'));
    /** OpenAI's client shape: client.chat.completions.create(request). */
    this.chat = { completions: { create: this.createChatCompletion.bind(this) } };
  }

  /** @param {ToWorker} message */
  post(message) {
    this.worker.postMessage(message);
  }

  /** Every waiter fails with `error`; later calls fail with it too. @param {unknown} error */
  fail(error) {
    this.broken ??= error;
    this.loadWaiter?.reject(error);
    this.loadWaiter = null;
    for (const p of this.pending.values()) this.settle(p, error);
    this.pending.clear();
  }

  /** @param {Pending} p @param {unknown} error */
  settle(p, error) {
    if (!p.settled) {
      p.settled = true;
      p.reject(error);
    }
    p.inbox?.close(error);
  }

  /** @param {FromWorker} m */
  receive(m) {
    switch (m.type) {
      case 'progress':
        this.onProgress?.(m.progress);
        return;
      case 'loaded':
        this.loadWaiter?.resolve(m.info);
        this.loadWaiter = null;
        return;
      case 'load-error':
        this.loadWaiter?.reject(deserializeError(m.error));
        this.loadWaiter = null;
        return;
      case 'unloaded':
        return;
    }
    const p = this.pending.get(m.id);
    if (!p) return; // a request the page gave up on
    switch (m.type) {
      case 'stream-start':
        p.settled = true;
        p.resolve(undefined);
        break;
      case 'chunk':
        p.inbox?.push(m.chunk);
        break;
      case 'end':
        p.inbox?.close();
        this.pending.delete(m.id);
        break;
      case 'completion':
        p.settled = true;
        p.resolve(m.completion);
        this.pending.delete(m.id);
        break;
      case 'error':
        this.settle(p, deserializeError(m.error));
        this.pending.delete(m.id);
        break;
    }
  }

  /**
   * @overload
   * @param {ChatRequest & {stream: true}} request
   * @returns {Promise<AsyncGenerator<ChatCompletionChunk, void, void>>}
   */
  /**
   * @overload
   * @param {ChatRequest & {stream?: false | null}} request
   * @returns {Promise<ChatCompletion>}
   */
  /**
   * @overload
   * @param {ChatRequest} request
   * @returns {Promise<ChatCompletion | AsyncGenerator<ChatCompletionChunk, void, void>>}
   */
  /**
   * Engine.createChatCompletion, run in the worker.
   * @param {ChatRequest} request
   * @returns {Promise<ChatCompletion | AsyncGenerator<ChatCompletionChunk, void, void>>}
   */
  async createChatCompletion(request) {
    if (this.broken) throw this.broken;
    const { signal, ...body } = request ?? {};
    if (signal?.aborted) throw abortError();
    const id = this.nextId++;
    const stream = body.stream === true;
    /** @type {Inbox<ChatCompletionChunk> | null} */
    const inbox = stream ? new Inbox() : null;
    const started = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, inbox, settled: false });
    });
    const onAbort = () => this.post({ type: 'abort', id });
    try {
      this.post({ type: 'create', id, request: body }); // throws DataCloneError for bodies postMessage cannot copy
    } catch (e) {
      this.pending.delete(id);
      throw e;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (!stream || !inbox) {
      try {
        return await started;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    }
    try {
      await started;
    } catch (e) {
      signal?.removeEventListener('abort', onAbort);
      throw e;
    }
    const client = this;
    return (async function* chunks() {
      let finished = false;
      try {
        yield* inbox.drain();
        finished = true;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        if (!finished && client.pending.has(id)) client.post({ type: 'abort', id }); // the page stopped reading
      }
    })();
  }

  /** Forget the worker's KV cache. */
  resetCache() {
    this.post({ type: 'reset-cache' });
  }

  /** Stops the worker; pending requests fail. */
  destroy() {
    this.fail(new WorkerError('the engine was destroyed'));
    this.worker.terminate();
  }
}
