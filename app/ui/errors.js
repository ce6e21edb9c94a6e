// errors.js: one class per way the app (not the engine: see app/engine/errors.js) can fail, each message saying
// what to do. The UI shows `message` as is, and tells classes apart by `name` (engine errors cross a worker
// boundary as {name, message}, so `name` is what both kinds have in common).

export class AppError extends Error {
  /** @param {string} message @param {{cause?: unknown}} [options] */
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The browser lets this site store less than the model needs. Nothing was downloaded. */
export class StorageFullError extends AppError {}

/** The network went away during a download. Verified files are kept; the download resumes from them. */
export class DownloadInterruptedError extends AppError {}

/** A file kept arriving with the wrong size or sha256. It was not stored; nothing was activated. */
export class FileIntegrityError extends AppError {}

/** The server answered a model file with an error status (the version is gone or the server is misconfigured). */
export class ServerFileError extends AppError {}

/** models/index.json is missing, unreadable, or names no model. */
export class ModelIndexError extends AppError {}

/** No WebGPU, no adapter, or a GPU too small for the model (the engine's probe says which). */
export class DeviceUnsupportedError extends AppError {
  /** @param {string} message  for people @param {string} reason  the probe's own words (app.js useServer shows them) */
  constructor(message, reason) {
    super(message);
    this.reason = reason;
  }
}

/** Cache Storage is unavailable (a private window, or the page is not served over https or from localhost). */
export class StoreUnavailableError extends AppError {}

/** @param {unknown} e */
export function isAbort(e) {
  return e instanceof DOMException && e.name === 'AbortError';
}

/** @param {unknown} e */
export function messageOf(e) {
  return e instanceof Error || e instanceof DOMException ? e.message : String(e);
}

/** @param {unknown} e */
export function nameOf(e) {
  return e instanceof Error || e instanceof DOMException ? e.name : 'Error';
}
