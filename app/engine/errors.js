// errors.js: the host layer's error classes, one per way a request or a load can fail, each message saying what to
// do. The GPU layer's classes (gpu/errors.js) are re-exported so that a caller needs one import, and ERROR_CLASSES
// lets the worker client rebuild an error from its name after postMessage (which keeps only name and message).

import {
  CapacityError, ContextError, EngineError, FetchError, FormatError, GrammarError, IntegrityError, ShaderError,
} from './gpu/errors.js';

export { CapacityError, ContextError, EngineError, FetchError, FormatError, GrammarError, IntegrityError, ShaderError };

/** A request the engine cannot take as given: bad messages, max_tokens, temperature, ... (HTTP 400 in OpenAI). */
export class InputError extends EngineError {}

/** The prompt does not fit the KV cache allocated at load time. */
export class ContextOverflowError extends InputError {}

/** No WebGPU here, or the GPU cannot hold this package (probe() said why). */
export class WebGPUUnavailableError extends EngineError {}

/** The CPU engine cannot run here: no WebAssembly SIMD, or the package's heap cannot fit (cpu/probe.js said why). */
export class CpuUnavailableError extends EngineError {}

/** The GPU device was lost (driver reset, tab in the background too long, destroy()): load the engine again. */
export class DeviceLostError extends EngineError {}

/** The worker died or answered something the client does not understand. */
export class WorkerError extends EngineError {}

/** The fallback server (server-client.js) cannot be reached, has no API here, or failed; its message says which. */
export class ServerError extends EngineError {}

/** The fallback server wants an access key (its `--token`) and none, or a wrong one, was sent. */
export class ServerAuthError extends ServerError {}

/** Every class above, by name. */
export const ERROR_CLASSES = Object.freeze({
  EngineError, InputError, ContextOverflowError, WebGPUUnavailableError, CpuUnavailableError, DeviceLostError,
  WorkerError, ServerError, ServerAuthError,
  CapacityError, ContextError, FetchError, FormatError, GrammarError, IntegrityError, ShaderError,
});

/**
 * The error an aborted request rejects with: a DOMException named "AbortError", as fetch() throws.
 * @param {string} [what]
 */
export function abortError(what = 'the request was aborted') {
  return new DOMException(what, 'AbortError');
}

/** @param {AbortSignal | undefined | null} signal */
export function throwIfAborted(signal) {
  if (signal?.aborted) throw abortError();
}

/**
 * What crosses postMessage for an error: its class name and message.
 * @param {unknown} e
 * @returns {{name: string, message: string}}
 */
export function serializeError(e) {
  if (e instanceof Error || e instanceof DOMException) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

/**
 * The inverse of serializeError: the same class when it is one of ours, AbortError as a DOMException.
 * @param {{name: string, message: string}} e
 * @returns {Error | DOMException}
 */
export function deserializeError(e) {
  if (e.name === 'AbortError') return abortError(e.message);
  const Class = /** @type {Record<string, typeof EngineError>} */ (ERROR_CLASSES)[e.name];
  if (Class) return new Class(e.message);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}
