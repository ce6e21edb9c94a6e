// reconnect.js: wait until the server answers again, asking it directly with backoff (and at once when the browser
// says the network is back). The browser's `online` event alone is not enough: a server that restarts, or a link
// that drops beyond the first hop, leaves the browser "online" the whole time.

import { backoffDelay } from './retry.js';

export class Reconnector {
  /**
   * @param {() => Promise<boolean>} probe  true once the server answers
   * @param {{baseMs: number, maxMs: number}} delays  first wait, doubling (with jitter) up to maxMs
   */
  constructor(probe, delays) {
    this.probe = probe;
    this.delays = delays;
    /** @type {(() => void) | null} ends the current wait early */
    this.wake = null;
    this.tries = 0;
  }

  /** Try now instead of at the end of the current wait (the `online` event). */
  nudge() {
    this.wake?.();
  }

  /**
   * Resolves once the probe says the server answers; rejects with the signal's reason when it aborts.
   * @param {AbortSignal} [signal]
   * @param {(waitMs: number, attempt: number) => void} [onWait]  before each wait
   */
  async wait(signal, onWait) {
    for (let attempt = 1; ; attempt++) {
      const ms = backoffDelay(attempt, this.delays.baseMs, this.delays.maxMs);
      onWait?.(ms, attempt);
      await new Promise((resolve, reject) => {
        const settle = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          this.wake = null;
        };
        const done = () => {
          settle();
          resolve(undefined);
        };
        const onAbort = () => {
          settle();
          reject(signal?.reason);
        };
        const timer = setTimeout(done, ms);
        this.wake = done;
        if (signal?.aborted) onAbort();
        else signal?.addEventListener('abort', onAbort, { once: true });
      });
      this.tries++;
      let ok = false;
      try {
        ok = await this.probe();
      } catch {
        ok = false;
      }
      if (ok) return;
    }
  }
}

/**
 * A probe that asks the server for a small file that is always there, past every cache.
 * @param {typeof fetch} fetchFn @param {string} url
 * @returns {() => Promise<boolean>}
 */
export function serverProbe(fetchFn, url) {
  return async () => {
    const res = await fetchFn(url, { cache: 'no-store' });
    await res.body?.cancel();
    return res.ok;
  };
}
