// file-fetch.js: fetch() for file: URLs (Node's fetch speaks only http), so Engine.create can load a package folder.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/**
 * @param {string | URL | Request} url
 * @returns {Promise<Response>}
 */
export async function fileFetch(url) {
  const href = typeof url === 'string' ? url : url instanceof URL ? url.href : url.url;
  try {
    return new Response(await readFile(fileURLToPath(href)));
  } catch {
    return new Response('not found', { status: 404, statusText: 'Not Found' });
  }
}
