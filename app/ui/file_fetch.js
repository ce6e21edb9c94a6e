// file_fetch.js: one model file from the network, resumed by byte range. The bytes received so far are kept in a
// Partial (one per file, owned by the caller); a retry asks only for the rest (`Range: bytes=<got>-`, with
// `If-Range` naming the first answer's ETag so that a file replaced on the server comes back whole). A server that
// ignores ranges answers 200 with the whole file, which simply starts over. Whatever path the bytes took, the whole
// file's size and sha256 are checked at the end, and a file that fails the check is fetched again from byte 0.

import { ServerFileError } from './errors.js';
import { sha256Hex } from '../engine/index.js';

/** @typedef {{path: string, size: number, sha256: string}} FileEntry */

/** A file that arrived damaged (wrong size or sha256, or a range answer that does not fit): worth retrying. */
export class BadBytes extends Error {}

/** The bytes of one file received so far, kept across attempts. */
export class Partial {
  /** @param {number} size */
  constructor(size) {
    this.size = size;
    /** @type {Uint8Array<ArrayBuffer> | null} allocated on the first byte */
    this.data = null;
    this.got = 0;
    /** @type {string | null} the validator of the answer these bytes came from (strong ETags only) */
    this.etag = null;
  }

  /** Forgets every byte; returns how many were dropped. */
  reset() {
    const dropped = this.got;
    this.got = 0;
    this.etag = null;
    return dropped;
  }
}

/**
 * "bytes START-END/TOTAL" -> {start, end, total}, or null.
 * @param {string | null} header
 */
export function parseContentRange(header) {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec((header ?? '').trim());
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? NaN : Number(m[3]) };
}

/**
 * GET one file (or the rest of it) and check it. Throws BadBytes (wrong size or hash, a range that does not fit),
 * ServerFileError (HTTP status; `retryable` set for 5xx, 408, 429) or the fetch's TypeError (network). The bytes of
 * a cut transfer stay in `partial` for the next attempt.
 * @param {typeof fetch} fetchFn @param {string} url @param {FileEntry} file @param {Partial} partial
 * @param {(delta: number) => void} onBytes  bytes received; negative when received bytes are discarded
 * @param {AbortSignal} [signal]
 * @returns {Promise<{data: Uint8Array<ArrayBuffer>, contentType: string, resumedFrom: number}>}
 */
export async function fetchFile(fetchFn, url, file, partial, onBytes, signal) {
  const from = partial.got;
  /** @type {Record<string, string>} */
  const headers = {};
  if (from > 0) {
    headers.range = `bytes=${from}-`;
    if (partial.etag) headers['if-range'] = partial.etag;
  }
  // no-store: a damaged copy must not come back from the HTTP cache on retry, and the model store keeps the bytes
  const res = await fetchFn(url, { cache: 'no-store', signal, headers });
  const drop = () => onBytes(-partial.reset());
  if (res.status === 416) {
    drop();
    throw new BadBytes(`${file.path}: the server refused the range ${from}- (the file changed?)`);
  }
  if (!res.ok) {
    const err = new ServerFileError(`The server answered HTTP ${res.status} for ${file.path}. ` +
      (res.status === 404 ? 'This model version is no longer published: reload the page to get the current one.'
        : 'Try again later; if it persists, tell whoever runs the server.'));
    /** @type {any} */ (err).retryable = res.status >= 500 || res.status === 408 || res.status === 429;
    throw err;
  }
  if (res.status === 206) {
    const range = parseContentRange(res.headers.get('content-range'));
    if (from === 0 || !range || range.start !== from || (Number.isFinite(range.total) && range.total !== file.size)) {
      await res.body?.cancel();
      drop();
      throw new BadBytes(`${file.path}: the server sent a range that does not continue the download`);
    }
  } else if (from > 0) {
    drop(); // 200: the server ignores ranges (or the file changed): the whole file follows, from byte 0
  }
  const etag = res.headers.get('etag');
  if (partial.got === 0) partial.etag = etag && !etag.startsWith('W/') ? etag : null;
  partial.data ??= new Uint8Array(file.size);
  const data = partial.data;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read(); // a cut connection throws a TypeError here: the bytes stay
      if (done) break;
      if (partial.got + value.byteLength > file.size) {
        await reader.cancel();
        drop();
        throw new BadBytes(`${file.path} is larger than ${file.size} bytes`);
      }
      data.set(value, partial.got);
      partial.got += value.byteLength;
      onBytes(value.byteLength);
    }
  } else {
    const all = new Uint8Array(await res.arrayBuffer());
    if (partial.got + all.byteLength > file.size) {
      drop();
      throw new BadBytes(`${file.path} is larger than ${file.size} bytes`);
    }
    data.set(all, partial.got);
    partial.got += all.byteLength;
    onBytes(all.byteLength);
  }
  if (partial.got !== file.size) {
    // the body ended early without a network error: keep the prefix, the next attempt asks for the rest
    throw new BadBytes(`${file.path} has ${partial.got} bytes, expected ${file.size}`);
  }
  if ((await sha256Hex(data)) !== file.sha256) {
    drop(); // some byte is wrong, possibly in the part kept from before: start over
    throw new BadBytes(`${file.path} does not match its sha256`);
  }
  return { data, contentType: res.headers.get('content-type') ?? 'application/octet-stream', resumedFrom: from };
}
