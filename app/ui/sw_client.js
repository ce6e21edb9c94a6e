// sw_client.js: registering service_worker/sw.js and the update flow. A new app version installs in the
// background and waits; the page offers a reload, and only when the user accepts (and no answer is being written)
// does it ask the waiting worker to take over, then reloads once it has.

/**
 * @param {{onUpdateReady: (reg: ServiceWorkerRegistration) => void, onTakenOver: () => void}} hooks
 *   onUpdateReady: a new version is installed and waiting; onTakenOver: a new version took over without this page
 *   asking (another tab accepted the update).
 * @returns {Promise<ServiceWorkerRegistration | null>}
 */
export async function registerServiceWorker(hooks) {
  if (!('serviceWorker' in navigator)) return null;
  const container = navigator.serviceWorker;
  const hadController = !!container.controller;
  const reg = await container.register('sw.js', { scope: './', updateViaCache: 'none' });
  const offerIfWaiting = () => {
    if (reg.waiting && container.controller) hooks.onUpdateReady(reg);
  };
  offerIfWaiting();
  reg.addEventListener('updatefound', () => {
    const worker = reg.installing;
    worker?.addEventListener('statechange', () => {
      if (worker.state === 'installed') offerIfWaiting();
    });
  });
  container.addEventListener('controllerchange', () => {
    // the first install claims this page (hadController false): nothing changed for the user
    if (hadController && !reloading) hooks.onTakenOver();
  });
  return reg;
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

/**
 * Resolves true once a service worker controls this page, false if none will (no support, registration failed)
 * or none does within `timeoutMs` (its install failed or is stuck). The engine loads model files by URL, and only a
 * controlled page gets them from the model store: before the first install finishes they would be downloaded again.
 * @param {Promise<ServiceWorkerRegistration | null>} registration  what registerServiceWorker() gave
 * @param {number} timeoutMs
 * @returns {Promise<boolean>}
 */
export async function whenControlled(registration, timeoutMs) {
  if (!('serviceWorker' in navigator)) return false;
  if (navigator.serviceWorker.controller) return true;
  const reg = await registration;
  if (!reg || !(reg.installing || reg.waiting || reg.active)) return false;
  if (navigator.serviceWorker.controller) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    navigator.serviceWorker.addEventListener('controllerchange', () => {
      clearTimeout(timer);
      resolve(true);
    }, { once: true });
  });
}
