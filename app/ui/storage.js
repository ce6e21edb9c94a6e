// storage.js: room for a model before a byte of it is fetched, and the request that the browser not evict it.

import { StorageFullError } from './errors.js';
import { formatBytes } from './format.js';

// browsers report an estimate, and Cache Storage keeps some overhead per entry: ask for a margin above the size
const MARGIN = 1.05;
const MARGIN_BYTES = 8e6;

/**
 * Throws StorageFullError when the browser lets this site store less than `needBytes` more.
 * @param {number} needBytes
 * @param {StorageManager | undefined} storage  navigator.storage
 */
export async function checkSpace(needBytes, storage) {
  if (!storage?.estimate || needBytes <= 0) return;
  const { quota, usage } = await storage.estimate();
  if (quota === undefined) return; // the browser would not say: try, and let a failed write report it
  const free = Math.max(0, quota - (usage ?? 0));
  const need = needBytes * MARGIN + MARGIN_BYTES;
  if (free < need) {
    throw new StorageFullError(`Not enough storage: the model needs ${formatBytes(need)} and this browser allows ` +
      `this app only ${formatBytes(free)} more. Free space on the device (remove files, apps or other sites' ` +
      'offline data), then try again. Nothing was downloaded.');
  }
}

/**
 * Asks that the site's storage survive storage pressure (browsers may decline; the app works either way).
 * @param {StorageManager | undefined} storage
 * @returns {Promise<boolean>}
 */
export async function requestPersistence(storage) {
  try {
    if (!storage?.persist) return false;
    return (await storage.persisted?.()) || (await storage.persist());
  } catch {
    return false;
  }
}

/**
 * Bytes the browser says this site may still store, or null when it will not say.
 * @param {StorageManager | undefined} storage
 * @returns {Promise<number | null>}
 */
export async function freeSpace(storage) {
  try {
    const { quota, usage } = storage?.estimate ? await storage.estimate() : {};
    return quota === undefined ? null : Math.max(0, quota - (usage ?? 0));
  } catch {
    return null;
  }
}

/**
 * What the site stores now, for the "ready offline" panel.
 * @param {StorageManager | undefined} storage
 * @returns {Promise<{usage: number | null, quota: number | null, persisted: boolean}>}
 */
export async function storageUse(storage) {
  try {
    const est = storage?.estimate ? await storage.estimate() : {};
    const persisted = storage?.persisted ? await storage.persisted() : false;
    return { usage: est.usage ?? null, quota: est.quota ?? null, persisted };
  } catch {
    return { usage: null, quota: null, persisted: false };
  }
}
