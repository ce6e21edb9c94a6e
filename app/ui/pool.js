// pool.js: run an async job per item with at most `concurrency` at once. The first failure stops the pool: jobs
// not started are skipped, running ones are told through the signal, and the failure is thrown once all settle.

/**
 * @template T
 * @param {T[]} items
 * @param {number} concurrency
 * @param {(item: T, signal: AbortSignal) => Promise<void>} job
 * @param {AbortSignal} [signal]  aborting it stops the pool like a failure would
 * @returns {Promise<void>}
 */
export async function runPool(items, concurrency, job, signal) {
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  /** @type {unknown[]} */
  const failures = [];
  let next = 0;
  async function lane() {
    while (!stop.signal.aborted && next < items.length) {
      const item = items[next++];
      try {
        await job(item, stop.signal);
      } catch (e) {
        failures.push(e);
        stop.abort(e);
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, lane));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failures.length) throw failures[0];
  if (signal?.aborted) throw signal.reason;
}
