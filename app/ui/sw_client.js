// sw_client.js: registering service_worker/sw.js and the update flow. A new app version installs in the
// background and waits; the page offers a reload, and only when the user accepts (and no answer is being written)
// does it ask the waiting worker to take over, then reloads once it has.
//
// The first install is what makes the app work offline, so it is never left to chance: when it fails (the network
// dropped during the precache, a shell file kept failing), the browser forgets the registration, and this module
// registers again with backoff for as long as the page is open; the next start registers again too. The page shows
// "Ready offline" only once a worker controls it (the shell is stored) and the model is stored.

import { backoffDelay, sleep } from './retry.js';

/**
 * @typedef {object} SwHooks
 * @property {(reg: ServiceWorkerRegistration) => void} onUpdateReady  a new version is installed and waiting
 * @property {() => void} onTakenOver  a new version took over without this page asking (another tab accepted it)
 * @property {(attempt: number, waitMs: number, error: unknown) => void} [onInstallFailed]  the first install failed;
 *   it is tried again in waitMs
 * @property {() => void} [onControlled]  a worker controls this page (first install done, or already installed)
 */

/**
 * Registers the service worker and keeps registering it until its first install has succeeded.
 * @param {SwHooks} hooks
 * @param {{baseMs: number, maxMs: number}} [retry]  pause before registering again after a failed first install
 */
export function registerServiceWorker(hooks, retry = { baseMs: 2000, maxMs: 60000 }) {
  return new ServiceWorkerSetup(hooks, retry);
}

export class ServiceWorkerSetup {
  /** @param {SwHooks} hooks @param {{baseMs: number, maxMs: number}} retry */
  constructor(hooks, retry) {
    this.hooks = hooks;
    this.retry = retry;
    this.supported = typeof navigator !== 'undefined' && 'serviceWorker' in navigator;
    /** the first install failed at least once (it is being retried) */
    this.failedOnce = false;
    /** @type {Set<() => void>} */
    this.failureWaiters = new Set();
    /** @type {WeakSet<ServiceWorkerRegistration>} */
    this.watched = new WeakSet();
    /** @type {Promise<ServiceWorkerRegistration | null>} resolves once a worker is installed (or never: retries) */
    this.registration = this.supported ? this.installLoop() : Promise.resolve(null);
    if (this.supported) {
      const container = navigator.serviceWorker;
      const hadController = !!container.controller;
      container.addEventListener('controllerchange', () => {
        this.hooks.onControlled?.();
        // the first install claims this page (hadController false): nothing changed for the user
        if (hadController && !reloading) this.hooks.onTakenOver();
      });
      if (hadController) queueMicrotask(() => this.hooks.onControlled?.());
    }
  }

  get controlled() {
    return this.supported && !!navigator.serviceWorker.controller;
  }

  /** @returns {Promise<ServiceWorkerRegistration>} */
  async installLoop() {
    const container = navigator.serviceWorker;
    for (let attempt = 1; ; attempt++) {
      let error;
      try {
        const reg = await container.register('sw.js', { scope: './', updateViaCache: 'none' });
        this.watch(reg);
        if (await installed(reg)) return reg;
        error = new Error('the service worker install failed (the app shell could not be stored)');
      } catch (e) {
        error = e; // sw.js itself could not be fetched
      }
      const waitMs = backoffDelay(attempt, this.retry.baseMs, this.retry.maxMs);
      console.warn(`service worker install failed (attempt ${attempt}); trying again in ${Math.round(waitMs)} ms`, error);
      this.failedOnce = true;
      for (const wake of this.failureWaiters) wake();
      this.hooks.onInstallFailed?.(attempt, waitMs, error);
      await sleep(waitMs);
    }
  }

  /** Offers an update whenever a new version is installed and waiting. @param {ServiceWorkerRegistration} reg */
  watch(reg) {
    if (this.watched.has(reg)) return;
    this.watched.add(reg);
    const container = navigator.serviceWorker;
    const offerIfWaiting = () => {
      if (reg.waiting && container.controller) this.hooks.onUpdateReady(reg);
    };
    offerIfWaiting();
    reg.addEventListener('updatefound', () => {
      const worker = reg.installing;
      worker?.addEventListener('statechange', () => {
        if (worker.state === 'installed') offerIfWaiting();
      });
    });
  }

  /**
   * Resolves true once a service worker controls this page; false when there is none (no support), when the first
   * install has failed (it keeps being retried: onControlled says when it worked), or after `timeoutMs`. The engine
   * loads model files by URL, and only a controlled page gets them from the model store.
   * @param {number} timeoutMs
   * @returns {Promise<boolean>}
   */
  whenControlled(timeoutMs) {
    if (!this.supported) return Promise.resolve(false);
    if (this.controlled) return Promise.resolve(true);
    if (this.failedOnce) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (/** @type {boolean} */ v) => {
        clearTimeout(timer);
        navigator.serviceWorker.removeEventListener('controllerchange', onChange);
        this.failureWaiters.delete(onFail);
        resolve(v);
      };
      const onChange = () => finish(true);
      const onFail = () => finish(false);
      const timer = setTimeout(onFail, timeoutMs);
      navigator.serviceWorker.addEventListener('controllerchange', onChange);
      this.failureWaiters.add(onFail);
    });
  }
}

/**
 * Whether the registration's newest worker gets installed (true) or becomes redundant (false).
 * @param {ServiceWorkerRegistration} reg
 * @returns {Promise<boolean>}
 */
function installed(reg) {
  const worker = reg.installing;
  if (!worker) return Promise.resolve(!!(reg.waiting || reg.active));
  return new Promise((resolve) => {
    const check = () => {
      if (worker.state === 'redundant') resolve(!!(reg.waiting || reg.active)); // an update may fail: not ours
      else if (worker.state !== 'installing') resolve(true);
    };
    worker.addEventListener('statechange', check);
    check();
  });
}

let reloading = false;

/**
 * Tells the waiting worker to take over, and reloads the page when it has.
 * @param {ServiceWorkerRegistration} reg
 */
export function applyUpdate(reg) {
  if (!reg.waiting) {
    location.reload();
    return;
  }
  reloading = true;
  navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(), { once: true });
  reg.waiting.postMessage({ type: 'SKIP_WAITING' });
}
