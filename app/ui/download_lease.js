// download_lease.js: one download of a model version per origin, however many tabs are open. The tab that takes
// the Web Lock "fieldllm-download:<package_id>" downloads and posts its progress on a BroadcastChannel of the same
// name; any other tab follows that progress, and takes the lock when it is released: by then every file is stored
// (its own download run only checks, and returns) or the first tab was closed half-way (it resumes from the files
// already verified). Browsers without Web Locks just download.

/** @typedef {import('./download_progress.js').DownloadProgress} DownloadProgress */

/**
 * @template T
 * @param {string} packageId
 * @param {{locks?: LockManager, onFollow?: () => void, onRemoteProgress?: (p: DownloadProgress) => void,
 *   onLead?: () => void}} hooks  onFollow: another tab holds the download; onLead: this tab does it
 * @param {(publish: (p: DownloadProgress) => void) => Promise<T>} run  the download; `publish` tells other tabs
 * @returns {Promise<T>}
 */
export async function withDownloadLease(packageId, hooks, run) {
  const { locks } = hooks;
  if (!locks?.request || typeof BroadcastChannel === 'undefined') {
    hooks.onLead?.();
    return run(() => {});
  }
  const name = `fieldllm-download:${packageId}`;
  const channel = new BroadcastChannel(name);
  const publish = (/** @type {DownloadProgress} */ p) => channel.postMessage({ type: 'progress', progress: p });
  try {
    /** @type {{value: T} | null} */
    const led = await locks.request(name, { ifAvailable: true }, async (lock) => {
      if (!lock) return null;
      hooks.onLead?.();
      return { value: await run(publish) };
    });
    if (led) return led.value;
    hooks.onFollow?.();
    channel.onmessage = (ev) => {
      if (ev.data?.type === 'progress') hooks.onRemoteProgress?.(ev.data.progress);
    };
    return await locks.request(name, async () => {
      channel.onmessage = null;
      hooks.onLead?.();
      return run(publish);
    });
  } finally {
    channel.close();
  }
}
