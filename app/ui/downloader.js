// downloader.js: one model version into the model store, written by the page (a service worker would be stopped
// by the browser during a long download). Every file is fetched at most `concurrency` at a time, retried with
// backoff, resumed by byte range where a transfer was cut (file_fetch.js), checked against the size and sha256 its
// manifest gives, and only then stored; files already stored are never fetched again, which is all "resume" across
// visits needs. One file that fails does not stop the others: they finish and are kept. The caller activates the
// version once this resolves.
//
// Out of storage (the browser refuses a write, whatever its estimate said): no new file starts, verified files stay,
// anything unverified in the version's cache and every partial transfer are dropped, and the StorageFullError says
// how much more room the rest needs (`needBytes`), so that the app can wait for the space to change.

import { DownloadInterruptedError, FileIntegrityError, ServerFileError, StorageFullError, isAbort }
  from './errors.js';
import { formatBytes } from './format.js';
import { DownloadTally } from './download_progress.js';
import { BadBytes, Partial, fetchFile } from './file_fetch.js';
import { runPool } from './pool.js';
import { withRetries } from './retry.js';
import { checkSpace, requestPersistence } from './storage.js';

/** @typedef {import('./model_index.js').ModelEntry} ModelEntry */
/** @typedef {import('./model_store.js').ModelStore} ModelStore */
/** @typedef {{path: string, size: number, sha256: string}} FileEntry */
/** @typedef {import('../engine/index.js').Manifest} Manifest */
/** @typedef {import('./download_progress.js').DownloadProgress} DownloadProgress */
/**
 * @typedef {object} DownloadOptions
 * @property {typeof fetch} fetch
 * @property {StorageManager | undefined} storage           navigator.storage
 * @property {number} [concurrency]                          files in flight (default 4)
 * @property {number} [attempts]                             tries per file (default 5)
 * @property {number} [baseDelayMs]                          first retry delay (default 500 ms, doubling)
 * @property {number} [maxDelayMs]                           longest retry delay (default 15 s)
 * @property {(p: DownloadProgress) => void} [onProgress]
 * @property {(manifest: Manifest) => Promise<void>} [beforeFiles]  last check before the big files (the GPU probe)
 * @property {Map<string, Partial>} [partials]  bytes of cut transfers, by URL: pass the same map to a later call
 *   (the same session) and it continues them by byte range
 * @property {AbortSignal} [signal]
 */

const MANIFEST = 'manifest.json';

/** @param {unknown} e */
export function isQuotaError(e) {
  return e instanceof DOMException && e.name === 'QuotaExceededError';
}

/** @param {unknown} e */
function retryable(e) {
  if (e instanceof BadBytes) return true;
  if (e instanceof ServerFileError) return /** @type {any} */ (e).retryable === true;
  // fetch's network failure, or a body stream cut off; not worth retrying once the browser knows it is offline
  return e instanceof TypeError && globalThis.navigator?.onLine !== false;
}

/** Failures after which no other file starts: there is no room, or no network. @param {unknown} e */
function fatal(e) {
  return e instanceof StorageFullError || e instanceof DownloadInterruptedError;
}

/**
 * The error to show when a file could not be stored after its retries.
 * @param {unknown} e @param {FileEntry} file @param {number} attempts
 */
function finalError(e, file, attempts) {
  if (e instanceof BadBytes) {
    return new FileIntegrityError(`${file.path} arrived damaged ${attempts} times (${e.message}), so it was not ` +
      'stored and this model version was not activated. Something between this device and the server is ' +
      'altering files: try another network, or tell whoever runs the server.', { cause: e });
  }
  if (e instanceof TypeError) {
    return new DownloadInterruptedError('The download stopped because the network or the server went away. The ' +
      'files already verified are kept: it continues from where it stopped as soon as the server answers again.',
    { cause: e });
  }
  return e;
}

/**
 * @param {number} needBytes  what the files not yet stored take
 * @param {unknown} cause
 */
function storageFull(needBytes, cause) {
  const err = new StorageFullError(`The device ran out of storage during the download: the rest of the model needs ` +
    `about ${formatBytes(needBytes)} more. Free that much space (remove files, apps or other sites' offline ` +
    'data), then press "Try again": the files already verified are kept, and the download continues from them.',
  { cause });
  /** @type {any} */ (err).needBytes = needBytes;
  return err;
}

/**
 * Downloads and verifies every file of `entry` not yet in the store.
 * @param {ModelStore} store
 * @param {ModelEntry} entry
 * @param {DownloadOptions} opts
 * @returns {Promise<Manifest>}
 */
export async function downloadModel(store, entry, opts) {
  const { fetch: fetchFn, signal } = opts;
  const attempts = opts.attempts ?? 5;
  const retry = { attempts, baseDelayMs: opts.baseDelayMs ?? 500, maxDelayMs: opts.maxDelayMs ?? 15000, signal,
    retryable };
  const partials = opts.partials ?? new Map();
  const cache = await store.open(entry);
  const manifestFile = { path: MANIFEST, size: entry.manifest_size, sha256: entry.manifest_sha256 };

  // room first, before any request: what is left of this version (all of it, until the manifest is stored)
  let manifest = await store.storedManifest(entry);
  const storedBefore = manifest ? await store.storedPaths(cache, entry, manifest.files) : new Set();
  const storedBytes = manifest ? entry.manifest_size + manifest.files.filter((f) => storedBefore.has(f.path))
    .reduce((s, f) => s + f.size, 0) : 0;
  await checkSpace(entry.size - storedBytes, opts.storage);
  await requestPersistence(opts.storage); // before the big files: a persisted site is not evicted under pressure

  const tally = new DownloadTally(entry.size, entry.files, storedBytes, manifest ? storedBefore.size + 1 : 0);
  const report = () => opts.onProgress?.(tally.progress());
  report();

  /** @param {FileEntry} file @param {AbortSignal} [jobSignal] */
  const fetchAndStore = async (file, jobSignal = signal) => {
    const url = store.fileUrl(entry, file.path);
    let partial = partials.get(url);
    if (!partial || partial.size !== file.size) partial = new Partial(file.size);
    partials.set(url, partial);
    if (partial.got) tally.received(partial.got); // kept from an earlier attempt in this session
    const onBytes = (/** @type {number} */ n) => {
      tally.received(n);
      report();
    };
    let got;
    try {
      got = await withRetries(() => fetchFile(fetchFn, url, file, partial, onBytes, jobSignal),
        { ...retry, signal: jobSignal });
    } catch (e) {
      tally.received(-partial.got); // not stored: these bytes wait in `partials`, but no longer count as done
      if (isAbort(e) || jobSignal?.aborted) throw e;
      throw finalError(e, file, attempts);
    }
    try {
      await store.putFile(cache, entry, file, got.data, got.contentType);
    } catch (e) {
      tally.received(-partial.got);
      partials.delete(url);
      if (isQuotaError(e)) throw storageFull(tally.bytesTotal - tally.bytesStored, e);
      throw e;
    }
    partials.delete(url);
    tally.stored(file.size, file.size);
    report();
  };

  try {
    if (!manifest) {
      await fetchAndStore(manifestFile);
      manifest = await store.storedManifest(entry);
      if (!manifest || manifest.package_id !== entry.package_id) {
        throw new FileIntegrityError(`The model list and ${MANIFEST} on the server disagree about this version; ` +
          'reload the page, and if it persists tell whoever runs the server to run `fieldllm build` again.');
      }
    }
    await opts.beforeFiles?.(manifest);
    const files = manifest.files;
    const stored = await store.storedPaths(cache, entry, files);
    const missing = files.filter((f) => !stored.has(f.path));
    // big files first: the pool stays busy to the end instead of waiting on one large straggler
    missing.sort((a, b) => b.size - a.size);
    await runPool(missing, opts.concurrency ?? 4, fetchAndStore, signal, fatal);
    const check = await store.storedPaths(cache, entry, files);
    const absent = files.filter((f) => !check.has(f.path));
    if (absent.length) {
      // the browser dropped entries while we wrote (storage pressure): say so rather than activate a hole
      throw storageFull(absent.reduce((s, f) => s + f.size, 0), null);
    }
  } catch (e) {
    tally.stop();
    report();
    if (e instanceof StorageFullError) {
      for (const url of [...partials.keys()]) if (url.startsWith(store.folderUrl(entry))) partials.delete(url);
      if (manifest) await store.deleteUnverified(cache, entry, [manifestFile, ...manifest.files]).catch(() => {});
    }
    throw e;
  }
  tally.finish();
  report();
  return manifest;
}
