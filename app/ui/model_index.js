// model_index.js: models/index.json, written by `fieldllm build` (app/build/models.py): which model version is
// current, with its size and the sha256 of its manifest.json. The page trusts this file for the manifest's hash and
// the manifest for every other file's, so nothing else from the server is taken on faith.

import { ModelIndexError } from './errors.js';

export const INDEX_URL = 'models/index.json';
const INDEX_FORMAT = 'fieldllm-models';
const SUPPORTED_VERSIONS = [1];

/**
 * @typedef {object} ModelEntry  one model version
 * @property {string} dir              folder under models/
 * @property {string} url              the folder's URL, relative to the app ("models/<dir>/")
 * @property {string} name
 * @property {string} package_id       sha256 over the package's file list: the version's identity
 * @property {number} size             bytes of every file, manifest.json included
 * @property {number} files            files, manifest.json included
 * @property {number} manifest_size
 * @property {string} manifest_sha256
 * @property {number} format_version
 */
/** @typedef {{current: ModelEntry | null, models: ModelEntry[]}} ModelIndex */

/** @param {any} m @returns {m is ModelEntry} */
function isEntry(m) {
  return !!m && typeof m.dir === 'string' && typeof m.url === 'string' && typeof m.name === 'string' &&
    typeof m.package_id === 'string' && /^[0-9a-f]{64}$/.test(m.package_id) && Number.isInteger(m.size) &&
    Number.isInteger(m.files) && Number.isInteger(m.manifest_size) && typeof m.manifest_sha256 === 'string';
}

/**
 * Reads the index from the server, never from a cache (it is how a new version is noticed).
 * @param {typeof fetch} fetchFn
 * @returns {Promise<ModelIndex>}  rejects with a TypeError when the network is down, ModelIndexError when bad
 */
export async function fetchModelIndex(fetchFn) {
  const res = await fetchFn(INDEX_URL, { cache: 'no-store' });
  if (!res.ok) {
    throw new ModelIndexError(`The server has no model list (${INDEX_URL}: HTTP ${res.status}). Whoever runs it ` +
      'should run `fieldllm build --package DIR` and serve the result.');
  }
  /** @type {any} */
  let data;
  try {
    data = await res.json();
  } catch {
    throw new ModelIndexError(`${INDEX_URL} on the server is not JSON; rebuild the app with \`fieldllm build\`.`);
  }
  if (data?.format !== INDEX_FORMAT || !SUPPORTED_VERSIONS.includes(data.format_version) ||
      !Array.isArray(data.models) || !data.models.every(isEntry)) {
    throw new ModelIndexError(`${INDEX_URL} has a layout this app does not read (format ${data?.format} version ` +
      `${data?.format_version}); reload the page to get the matching app, or rebuild with \`fieldllm build\`.`);
  }
  const models = /** @type {ModelEntry[]} */ (data.models);
  return { current: models.find((m) => m.dir === data.current) ?? null, models };
}
