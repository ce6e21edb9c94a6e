// downloader.js: one model version into the model store, written by the page (a service worker would be stopped
// by the browser during a long download). Every file is fetched at most `concurrency` at a time, retried with
// backoff, checked against the size and sha256 its manifest gives, and only then stored; files already stored are
// never fetched again, which is all "resume" needs. The caller activates the version once this resolves.

import { DownloadInterruptedError, FileIntegrityError, ServerFileError, StorageFullError, isAbort }
  from './errors.js';
import { formatBytes } from './format.js';
import { readBody, sha256Hex } from '../engine/index.js';
import { runPool } from './pool.js';
import { ProgressMeter } from './progress_meter.js';
import { withRetries } from './retry.js';
import { checkSpace, requestPersistence } from './storage.js';

/** @typedef {import('./model_index.js').ModelEntry} ModelEntry */
/** @typedef {import('./model_store.js').ModelStore} ModelStore */
/** @typedef {{path: string, size: number, sha256: string}} FileEntry */
/** @typedef {import('../engine/index.js').Manifest} Manifest */
/**
 * @typedef {object} DownloadProgress
 * @property {number} bytesDone    of bytesTotal, files already stored included
 * @property {number} bytesTotal
 * @property {number} filesDone    verified and stored
 * @property {number} filesTotal
 * @property {number} rate         bytes per second, recent
 * @property {number} eta          seconds left (Infinity while unknown)
 */
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
 * @property {AbortSignal} [signal]
 */

const MANIFEST = 'manifest.json';

/** A file that arrived damaged: retried, and reported if it keeps happening. */
class BadBytes extends Error {}

/** @param {unknown} e */
function retryable(e) {
  if (e instanceof BadBytes) return true;
  if (e instanceof ServerFileError) return /** @type {any} */ (e).retryable === true;
  // fetch's network failure, or a body stream cut off; not worth retrying once the browser knows it is offline
  return e instanceof TypeError && navigator.onLine !== false;
}

/**
 * GET one file and check it. Throws BadBytes (wrong size or hash), ServerFileError (HTTP status) or TypeError
 * (network).
 * @param {typeof fetch} fetchFn @param {string} url @param {FileEntry} file
 * @param {(delta: number) => void} onBytes @param {AbortSignal} [signal]
 */
async function fetchChecked(fetchFn, url, file, onBytes, signal) {
  // no-store: a damaged copy must not come back from the HTTP cache on retry, and the model store keeps the bytes
  const res = await fetchFn(url, { cache: 'no-store', signal });
  if (!res.ok) {
    const err = new ServerFileError(`The server answered HTTP ${res.status} for ${file.path}. ` +
      (res.status === 404 ? 'This model version is no longer published: reload the page to get the current one.'
        : 'Try again later; if it persists, tell whoever runs the server.'));
    /** @type {any} */ (err).retryable = res.status >= 500 || res.status === 408 || res.status === 429;
    throw err;
  }
  let got = 0;
  let data;
  try {
    ({ data, got } = await readBody(res, file.size, (n) => { got += n; onBytes(n); },
      () => new BadBytes(`${file.path} is larger than ${file.size} bytes`)));
    if (got !== file.size) throw new BadBytes(`${file.path} has ${got} bytes, expected ${file.size}`);
    if ((await sha256Hex(data)) !== file.sha256) throw new BadBytes(`${file.path} does not match its sha256`);
  } catch (e) {
    onBytes(-got); // these bytes do not count: the file starts over
    throw e;
  }
  return { data, contentType: res.headers.get('content-type') ?? 'application/octet-stream' };
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
  if (e instanceof DOMException && e.name === 'QuotaExceededError') {
    return new StorageFullError('The device ran out of storage during the download. Free some space (remove ' +
      'files, apps or other sites\' offline data), then try again: the files already verified are kept.', { cause: e });
  }
  if (e instanceof TypeError) {
    return new DownloadInterruptedError('The download stopped because the network went away. The files already ' +
      'verified are kept: it continues from where it stopped when you are back online.', { cause: e });
  }
  return e;
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
  const cache = await store.open(entry);
  const manifestFile = { path: MANIFEST, size: entry.manifest_size, sha256: entry.manifest_sha256 };

  // room first, before any request: what is left of this version (all of it, until the manifest is stored)
  let manifest = await store.storedManifest(entry);
  const storedBefore = manifest ? await store.storedPaths(cache, entry, manifest.files) : new Set();
  const storedBytes = manifest ? entry.manifest_size + manifest.files.filter((f) => storedBefore.has(f.path))
    .reduce((s, f) => s + f.size, 0) : 0;
  await checkSpace(entry.size - storedBytes, opts.storage);
  await requestPersistence(opts.storage);

  const meter = new ProgressMeter(entry.size - storedBytes);
  let filesDone = manifest ? storedBefore.size + 1 : 0;
  const report = () => opts.onProgress?.({
    bytesDone: storedBytes + meter.doneBytes, bytesTotal: entry.size, filesDone, filesTotal: entry.files,
    rate: meter.rate, eta: meter.eta,
  });
  report();

  /** @param {FileEntry} file @param {AbortSignal} [jobSignal] */
  const fetchAndStore = async (file, jobSignal = signal) => {
    const url = store.fileUrl(entry, file.path);
    const onBytes = (/** @type {number} */ n) => {
      meter.add(n);
      report();
    };
    try {
      const got = await withRetries(() => fetchChecked(fetchFn, url, file, onBytes, jobSignal),
        { ...retry, signal: jobSignal });
      await store.putFile(cache, entry, file, got.data, got.contentType);
    } catch (e) {
      if (isAbort(e) || jobSignal?.aborted) throw e;
      throw finalError(e, file, attempts);
    }
    filesDone++;
    report();
  };

  if (!manifest) {
    await fetchAndStore(manifestFile);
    manifest = await store.storedManifest(entry);
    if (!manifest || manifest.package_id !== entry.package_id) {
      throw new FileIntegrityError(`The model list and ${MANIFEST} on the server disagree about this version; ` +
        'reload the page, and if it persists tell whoever runs the server to run `fieldllm build` again.');
    }
  }
  await opts.beforeFiles?.(manifest);
  const stored = await store.storedPaths(cache, entry, manifest.files);
  const missing = manifest.files.filter((f) => !stored.has(f.path));
  // big files first: the pool stays busy to the end instead of waiting on one large straggler
  missing.sort((a, b) => b.size - a.size);
  await runPool(missing, opts.concurrency ?? 4, fetchAndStore, signal);
  const check = await store.storedPaths(cache, entry, manifest.files);
  const absent = manifest.files.filter((f) => !check.has(f.path));
  if (absent.length) {
    // the browser dropped entries while we wrote (storage pressure): say so rather than activate a hole
    throw new StorageFullError(`The browser did not keep ${absent.length} of the downloaded files (it was short of ` +
      `storage). Free some space (the model needs ${formatBytes(entry.size)}), then try again.`);
  }
  return manifest;
}
