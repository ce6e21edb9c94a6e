// model_store.js: model versions on the device, in Cache Storage, apart from the app shell.
//
// Each version is one cache, "fieldllm-model:<package_id>", holding its files under their URLs. A file is put there
// only after its sha256 matched (downloader.js), so "in the cache" means "verified", and a stopped download resumes
// by skipping what is there. Which version is in use is one small record, written last and in one put: the switch
// from one version to the next is atomic. service_worker/sw.js serves model files from these caches by URL.
//
// The record: {active, previous, confirmed, rejected}. A newly activated version is unconfirmed and the one before
// it stays on disk as `previous` until the new one has loaded once (confirm); if it fails to load, rollback() makes
// `previous` active again and remembers the failed version so that it is not offered again.

/** @typedef {import('./model_index.js').ModelEntry} ModelEntry */
/**
 * @typedef {object} StoreState
 * @property {ModelEntry | null} active      the version the app loads
 * @property {ModelEntry | null} previous    the last version that loaded, kept until `active` has loaded once
 * @property {boolean} confirmed             `active` has loaded successfully at least once
 * @property {string[]} rejected             package ids that failed to load here: not offered again
 */

export const MODEL_CACHE_PREFIX = 'fieldllm-model:'; // the same prefix as in service_worker/sw.js
const STATE_CACHE = 'fieldllm-model-state';
const STATE_KEY = '__fieldllm__/model-state.json';
const FULL_KEY = '__fieldllm__/storage-full.json'; // the storage-full memo's key (in `memo`, not a cache)
export const SHA_HEADER = 'x-fieldllm-sha256';

/** @returns {StoreState} */
function emptyState() {
  return { active: null, previous: null, confirmed: false, rejected: [] };
}

export class ModelStore {
  /**
   * @param {CacheStorage} cacheStorage
   * @param {string} baseUrl  the app's URL: entry.url is relative to it
   * @param {Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null} [memo]  where the storage-full memo is kept
   *   (default localStorage; null: not kept)
   */
  constructor(cacheStorage, baseUrl, memo = globalThis.localStorage ?? null) {
    this.caches = cacheStorage;
    this.memo = memo;
    this.baseUrl = baseUrl;
    this.stateKey = new URL(STATE_KEY, baseUrl).href;
    this.fullKey = new URL(FULL_KEY, baseUrl).href;
  }

  /** @param {{package_id: string}} entry */
  cacheName(entry) {
    return MODEL_CACHE_PREFIX + entry.package_id;
  }

  /** Absolute URL of a file of a version: the cache key, and what the engine fetches. @param {ModelEntry} entry */
  folderUrl(entry) {
    return new URL(entry.url, this.baseUrl).href;
  }

  /** @param {ModelEntry} entry @param {string} path */
  fileUrl(entry, path) {
    return new URL(path, this.folderUrl(entry)).href;
  }

  /** @returns {Promise<StoreState>} */
  async readState() {
    const cache = await this.caches.open(STATE_CACHE);
    const res = await cache.match(this.stateKey);
    if (!res) return emptyState();
    try {
      return { ...emptyState(), ...(await res.json()) };
    } catch {
      return emptyState(); // unreadable: behave as a first run; verified files are still reused
    }
  }

  /** One put: the whole record or nothing. @param {StoreState} state */
  async writeState(state) {
    const cache = await this.caches.open(STATE_CACHE);
    await cache.put(this.stateKey, new Response(JSON.stringify(state), {
      headers: { 'content-type': 'application/json' },
    }));
    return state;
  }

  /** @param {ModelEntry} entry */
  open(entry) {
    return this.caches.open(this.cacheName(entry));
  }

  /** Has any file of this version been stored (a download to resume)? @param {ModelEntry} entry */
  async hasAny(entry) {
    if (!(await this.caches.has(this.cacheName(entry)))) return false;
    return (await (await this.open(entry)).keys()).length > 0;
  }

  /**
   * Stores verified bytes of one file.
   * @param {Cache} cache @param {ModelEntry} entry
   * @param {{path: string, size: number, sha256: string}} file @param {Uint8Array} bytes
   * @param {string} contentType
   */
  async putFile(cache, entry, file, bytes, contentType) {
    await cache.put(this.fileUrl(entry, file.path), new Response(/** @type {BlobPart} */ (bytes), {
      headers: { 'content-type': contentType, 'content-length': String(file.size), [SHA_HEADER]: file.sha256 },
    }));
  }

  /**
   * Which of `files` are stored with the expected size and sha256 (as recorded when they were verified).
   * @param {Cache} cache @param {ModelEntry} entry @param {{path: string, size: number, sha256: string}[]} files
   * @returns {Promise<Set<string>>} paths
   */
  async storedPaths(cache, entry, files) {
    const have = new Set();
    for (const f of files) {
      const res = await cache.match(this.fileUrl(entry, f.path));
      if (res && res.headers.get(SHA_HEADER) === f.sha256 &&
          Number(res.headers.get('content-length')) === f.size) have.add(f.path);
    }
    return have;
  }

  /**
   * Deletes what the version's cache holds that is not a verified file of `files` (junk a failed write may leave).
   * @param {Cache} cache @param {ModelEntry} entry @param {{path: string, size: number, sha256: string}[]} files
   */
  async deleteUnverified(cache, entry, files) {
    const verified = await this.storedPaths(cache, entry, files);
    const keep = new Set([...verified].map((p) => this.fileUrl(entry, p)));
    for (const request of await cache.keys()) {
      if (!keep.has(request.url)) await cache.delete(request);
    }
  }

  /**
   * A download stopped for want of storage: remembered, so that the next start does not download again into the
   * same full disk. `free` is what the browser said was free at the time (null when it would not say).
   * In `memo` (localStorage), not Cache Storage: the memo is written when the origin is out of quota, where Chromium
   * may leave a cache write unsettled (seen 2026-12-07: the put never resolved, and the app stayed on
   * "downloading"); localStorage has a limit of its own. Best effort: unkept, the next start downloads again and
   * stops again.
   * @param {{package_id: string, needBytes: number, free: number | null}} stop
   */
  async noteStorageFull(stop) {
    try {
      this.memo?.setItem(this.fullKey, JSON.stringify(stop));
    } catch {
      // storage refused even this: nothing to remember it by
    }
  }

  /** @returns {Promise<{package_id: string, needBytes: number, free: number | null} | null>} */
  async storageFullStop() {
    try {
      const text = this.memo?.getItem(this.fullKey);
      return text ? JSON.parse(text) : null;
    } catch {
      return null;
    }
  }

  async clearStorageFull() {
    try {
      this.memo?.removeItem(this.fullKey);
    } catch {
      // unreadable storage: nothing was kept
    }
  }

  /** The version's manifest.json if it is stored, else null. @param {ModelEntry} entry */
  async storedManifest(entry) {
    const cache = await this.open(entry);
    const res = await cache.match(this.fileUrl(entry, 'manifest.json'));
    if (!res || res.headers.get(SHA_HEADER) !== entry.manifest_sha256) return null;
    return /** @type {import('../engine/index.js').Manifest} */ (await res.json());
  }

  /**
   * The switch: `entry` (every file verified) becomes the version the app loads; the one in use until now stays
   * on disk as `previous` until the new one has loaded once.
   * @param {ModelEntry} entry
   */
  async activate(entry) {
    const s = await this.readState();
    if (s.active?.package_id === entry.package_id) return s;
    const previous = s.confirmed ? s.active : s.previous;
    return this.writeState({ active: entry, previous, confirmed: false, rejected: s.rejected });
  }

  /** The active version has loaded: it is now the fallback, and the previous version's files go. */
  async confirm() {
    const s = await this.readState();
    const old = s.previous;
    const next = await this.writeState({ ...s, previous: null, confirmed: true });
    if (old && old.package_id !== s.active?.package_id) await this.caches.delete(this.cacheName(old));
    return next;
  }

  /**
   * The active version failed to load: go back to the previous one, and never offer the failed one again.
   * @returns {Promise<StoreState>}
   */
  async rollback() {
    const s = await this.readState();
    if (!s.previous || !s.active) return s;
    const failed = s.active;
    const next = await this.writeState({
      active: s.previous, previous: null, confirmed: true, rejected: [...new Set([...s.rejected, failed.package_id])],
    });
    await this.caches.delete(this.cacheName(failed));
    return next;
  }

  /**
   * Deletes every model version but those named (old versions, abandoned or rejected downloads).
   * @param {Iterable<string>} keepIds package ids
   */
  async cleanup(keepIds) {
    const keep = new Set([...keepIds].map((id) => MODEL_CACHE_PREFIX + id));
    for (const name of await this.caches.keys()) {
      if (name.startsWith(MODEL_CACHE_PREFIX) && !keep.has(name)) await this.caches.delete(name);
    }
  }
}
