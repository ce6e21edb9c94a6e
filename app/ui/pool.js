// pool.js: run an async job per item with at most `concurrency` at once. One failing item does not stop the others:
// jobs in flight finish (their bytes are not thrown away) and the rest still run; the first failure is thrown once
// all have settled. Only a failure that `isFatal` calls fatal (the device is out of storage, the network is gone)
// stops new jobs from starting; even then the running ones are left to finish. Aborting `signal` stops everything.

/**
 * @template T
 * @param {T[]} items
 * @param {number} concurrency
 * @param {(item: T, signal: AbortSignal) => Promise<void>} job
 * @param {AbortSignal} [signal]  aborting it aborts the running jobs and skips the rest
 * @param {(e: unknown) => boolean} [isFatal]  failures after which no new job starts
 * @returns {Promise<void>}
 */
export async function runPool(items, concurrency, job, signal, isFatal = () => false) {
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort, { once: true });
  /** @type {unknown[]} */
  const failures = [];
  let fatal = false;
  let next = 0;
  async function lane() {
    while (!stop.signal.aborted && !fatal && next < items.length) {
      const item = items[next++];
      try {
        await job(item, stop.signal);
      } catch (e) {
        failures.push(e);
        if (isFatal(e)) fatal = true;
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, lane));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (signal?.aborted) throw signal.reason;
  if (failures.length) throw failures.find(isFatal) ?? failures[0];
}
