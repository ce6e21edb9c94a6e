// thread-worker.js: one CPU engine worker thread (threads.js starts it). Gets {module, memory, tid, stackTop},
// instantiates cpu_engine_mt.wasm over the shared memory, moves its stack pointer to its own stack, says 'ready' and
// runs fe_worker(tid), which returns only after fe_stop. A Web Worker in the browser, a worker_threads Worker in Node.

import { importNode } from './threads.js';

/** @type {{post: (m: object) => void, listen: (f: (m: any) => void) => void}} */
const port = typeof self !== 'undefined' && typeof self.postMessage === 'function'
  ? { post: (m) => self.postMessage(m), listen: (f) => self.addEventListener('message', (e) => f(/** @type {MessageEvent} */ (e).data)) }
  : await (async () => {
    const { parentPort } = await importNode('node:worker_threads');
    return { post: (/** @type {object} */ m) => parentPort.postMessage(m), listen: (/** @type {(m: any) => void} */ f) => parentPort.on('message', f) };
  })();

port.listen(async (/** @type {{module: WebAssembly.Module, memory: WebAssembly.Memory, tid: number, stackTop: number}} */ m) => {
  let ex;
  try {
    const instance = await WebAssembly.instantiate(m.module, { env: { memory: m.memory } });
    ex = /** @type {any} */ (instance.exports);
    ex.__stack_pointer.value = m.stackTop;
  } catch (e) {
    port.post({ type: 'error', message: /** @type {Error} */ (e).message });
    return;
  }
  port.post({ type: 'ready' });
  const rc = ex.fe_worker(m.tid);
  port.post({ type: 'done', rc });
});
