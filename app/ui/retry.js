// retry.js: try an async step again after failures worth retrying, waiting longer each time (exponential backoff
// with jitter, so that many devices behind one satellite link do not retry in lockstep).

/**
 * Milliseconds to wait before attempt `attempt + 1`: a random value in [d/2, d], d = base * 2^(attempt-1), capped.
 * @param {number} attempt  the attempt that just failed, from 1
 * @param {number} baseMs
 * @param {number} maxMs
 */
export function backoffDelay(attempt, baseMs, maxMs) {
  const d = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  return d / 2 + Math.random() * (d / 2);
}

/**
 * Resolves after `ms`, or rejects with the signal's reason when it aborts first.
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * @template T
 * @param {(attempt: number) => Promise<T>} step
 * @param {object} opts
 * @param {number} opts.attempts       tries in all, at least 1
 * @param {number} opts.baseDelayMs
 * @param {number} opts.maxDelayMs
 * @param {(e: unknown) => boolean} opts.retryable
 * @param {AbortSignal} [opts.signal]
 * @param {(e: unknown, attempt: number) => void} [opts.onRetry]
 * @returns {Promise<T>}
 */
export async function withRetries(step, { attempts, baseDelayMs, maxDelayMs, retryable, signal, onRetry }) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step(attempt);
    } catch (e) {
      if (signal?.aborted || attempt >= attempts || !retryable(e)) throw e;
      onRetry?.(e, attempt);
      await sleep(backoffDelay(attempt, baseDelayMs, maxDelayMs), signal);
    }
  }
}
