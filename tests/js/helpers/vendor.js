// vendor.js (tests): the npm libraries and the package files loaded the way the engine loads them, for Node.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { importVendor } from '../../../app/engine/vendor.js';

export const vendor = await importVendor();

/** @param {string} path @returns {any} */
export function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** @param {string} packageDir */
export function readPackage(packageDir) {
  return { manifest: readJson(join(packageDir, 'manifest.json')), tokenizerJson: readJson(join(packageDir, 'tokenizer.json')) };
}
