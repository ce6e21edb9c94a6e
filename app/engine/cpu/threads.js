// threads.js: the CPU engine's worker threads. cpu_engine_mt.wasm (scripts/build_wasm.sh, -DFE_THREADS) imports one
// shared memory; each worker instantiates the same module over it, takes its own stack (fe_alloc'd here) and runs
// fe_worker(tid), which waits for the jobs the forward pass hands out (cpu_engine.c "threads"). In the browser the
// workers are Web Workers (the page must be cross-origin isolated: SharedArrayBuffer); under Node, worker_threads.
//
//   const memory = sharedMemory();                      // before instantiating the main instance
//   const pool = await startWorkers({module, memory, exports, count: n - 1});
//   exports.fe_threads(n);                              // only once every worker is inside fe_worker
//   ...
//   pool.stop();                                        // fe_stop, then the workers are ended

import { EngineError } from '../gpu/errors.js';

/** Pages of the imported memory at start (scripts/build_wasm.sh --initial-memory=4194304) and at most (4 GiB). */
const INITIAL_PAGES = 64;
const MAXIMUM_PAGES = 65536;
/** Stack bytes per worker: the kernels keep a few vectors and arrays on it (the main instance has 1 MiB). */
export const WORKER_STACK_BYTES = 256 * 1024;
const WORKER_URL = new URL('./thread-worker.js', import.meta.url);

/** Whether this context can share memory between threads: SharedArrayBuffer exists (a cross-origin isolated page,
 *  a worker of one, or Node). */
export function canShareMemory() {
  if (typeof SharedArrayBuffer === 'undefined') return false;
  const g = /** @type {{crossOriginIsolated?: boolean}} */ (globalThis);
  return g.crossOriginIsolated !== false; // undefined under Node
}

/** Threads to use when the caller names none: the cores the browser reports (Node: the machine's), at most 4. */
export async function defaultThreads() {
  if (!canShareMemory()) return 1;
  const nav = /** @type {{hardwareConcurrency?: number} | undefined} */ (globalThis.navigator);
  let cores = nav?.hardwareConcurrency;
  if (!cores && isNode()) cores = (await importNode('node:os')).availableParallelism();
  return Math.max(1, Math.min(4, cores ?? 1));
}

export const isNode = () => !!(/** @type {any} */ (globalThis).process?.versions?.node);

/** A Node built-in, imported by a name the browser's type check does not resolve. @param {string} name */
export function importNode(name) {
  return /** @type {Promise<any>} */ (import(name));
}

export function sharedMemory() {
  return new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAXIMUM_PAGES, shared: true });
}

/**
 * A worker on this platform, with one message/error interface.
 * @returns {Promise<{post: (m: object) => void, onMessage: (f: (m: any) => void) => void,
 *                    onError: (f: (e: Error) => void) => void, terminate: () => void}>}
 */
async function spawn() {
  if (typeof Worker !== 'undefined') {
    const w = new Worker(WORKER_URL, { type: 'module', name: 'fieldllm-cpu-thread' });
    return {
      post: (m) => w.postMessage(m),
      onMessage: (f) => w.addEventListener('message', (e) => f(e.data)),
      onError: (f) => w.addEventListener('error', (e) => f(new Error(e.message || 'the worker failed to start'))),
      terminate: () => w.terminate(),
    };
  }
  const { Worker: NodeWorker } = await importNode('node:worker_threads');
  const w = new NodeWorker(WORKER_URL);
  w.unref();
  return {
    post: (m) => w.postMessage(m),
    onMessage: (f) => w.on('message', f),
    onError: (f) => w.on('error', f),
    terminate: () => { w.terminate(); },
  };
}

/**
 * Starts `count` workers, each inside fe_worker(1 .. count) when this resolves.
 * @param {{module: WebAssembly.Module, memory: WebAssembly.Memory, count: number,
 *          exports: {fe_alloc: (bytes: number) => number, fe_stop: () => void}}} o
 * @returns {Promise<{stop: () => void}>}
 */
export async function startWorkers(o) {
  /** @type {Awaited<ReturnType<typeof spawn>>[]} */
  const workers = [];
  const stop = () => {
    o.exports.fe_stop();
    for (const w of workers) w.terminate();
  };
  try {
    await Promise.all(Array.from({ length: o.count }, async (_, i) => {
      const tid = i + 1;
      const base = o.exports.fe_alloc(WORKER_STACK_BYTES) >>> 0;
      if (!base) throw new EngineError('out of WebAssembly memory for a worker thread\'s stack: use fewer threads');
      const w = await spawn();
      workers.push(w);
      await new Promise((resolve, reject) => {
        w.onError(reject);
        w.onMessage((m) => {
          if (m.type === 'ready') resolve(undefined);
          else if (m.type === 'error') reject(new EngineError(`CPU engine thread ${tid} failed: ${m.message}`));
        });
        w.post({ module: o.module, memory: o.memory, tid, stackTop: base + WORKER_STACK_BYTES });
      });
    }));
  } catch (e) {
    stop();
    throw e instanceof EngineError ? e : new EngineError(`could not start the CPU engine's threads: ${/** @type {Error} */ (e).message}`);
  }
  return { stop };
}
