// integrity.js: every byte of a model package is checked against manifest.json (size and sha256) before use, with
// the platform's own sha256 (crypto.subtle). Used by the downloader (app/ui/downloader.js, which stores files) and by
// the GPU loader (gpu/package.js fetchVerified, which uploads them).

import { IntegrityError } from './gpu/errors.js';

/** @typedef {import('./gpu/package.js').FileEntry} FileEntry */

/** sha256 with the platform's own implementation (crypto.subtle), as lowercase hex.
 * @param {Uint8Array<ArrayBuffer> | ArrayBuffer} buf @returns {Promise<string>} */
export async function sha256Hex(buf) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Reads a response body into a buffer of exactly `size` bytes, streaming so that progress can be shown.
 * @param {Response} res
 * @param {number} size  bytes expected
 * @param {((n: number) => void) | undefined} onBytes  bytes received since the last call
 * @param {() => Error} tooBig  the error thrown as soon as more than `size` bytes arrive
 * @returns {Promise<{data: Uint8Array<ArrayBuffer>, got: number}>}  got < size when the body ended early
 */
export async function readBody(res, size, onBytes, tooBig) {
  const data = new Uint8Array(size);
  let got = 0;
  if (!res.body) {
    const all = new Uint8Array(await res.arrayBuffer());
    if (all.byteLength > size) throw tooBig();
    data.set(all);
    onBytes?.(all.byteLength);
    return { data, got: all.byteLength };
  }
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (got + value.byteLength > size) {
      await reader.cancel();
      throw tooBig();
    }
    data.set(value, got);
    got += value.byteLength;
    onBytes?.(value.byteLength);
  }
  return { data, got };
}

/**
 * Reads one package file's response body and checks its size and sha256 against its manifest entry; throws
 * IntegrityError, saying what to do, when either differs.
 * @param {Response} res
 * @param {FileEntry} file
 * @param {(n: number) => void} [onBytes]  bytes received since the last call
 * @returns {Promise<Uint8Array<ArrayBuffer>>}  exactly file.size bytes
 */
export async function readVerified(res, file, onBytes) {
  const tooBig = () => new IntegrityError(`${file.path} is larger than the ${file.size} bytes manifest.json ` +
    'gives: the package is corrupt or mixed with another version; reinstall the model');
  const { data, got } = await readBody(res, file.size, onBytes, tooBig);
  if (got !== file.size) {
    throw new IntegrityError(`${file.path}: got ${got} bytes, manifest.json says ${file.size}: the download was cut ` +
      'short or the cached copy is damaged; reinstall the model');
  }
  const hash = await sha256Hex(data);
  if (hash !== file.sha256) {
    throw new IntegrityError(`${file.path}: sha256 ${hash} does not match manifest.json (${file.sha256}): the file ` +
      'is corrupt or from another package version; clear the model from storage and reinstall it');
  }
  return data;
}
