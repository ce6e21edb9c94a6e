// worker-protocol.js: the messages between client.js (the page) and worker.js (the engine), in one place.
// Requests carry an id; the worker answers each with chunks then "end", or one "completion", or one "error".
// Errors travel as {name, message} (errors.js rebuilds the class).

/**
 * @typedef {object} LoadOptions  what the worker needs to load a package (URLs absolute: the worker has no page)
 * @property {'webgpu' | 'cpu'} [engine]  which layer runs the model (default webgpu; choice.js decides)
 * @property {string} baseUrl
 * @property {string} shaderBaseUrl
 * @property {number | null} [deviceMemory]  the page's navigator.deviceMemory (cpu: the probe's memory check)
 * @property {import('./vendor.js').VendorUrls} vendorUrls
 * @property {number} [context]
 * @property {number} [passTokens]
 */
/**
 * @typedef {{type: 'load', options: LoadOptions}
 *   | {type: 'abort-load'}
 *   | {type: 'create', id: number, request: Omit<import('./request-options.js').ChatRequest, 'signal'>}
 *   | {type: 'abort', id: number}
 *   | {type: 'reset-cache'}
 *   | {type: 'unload'}} ToWorker
 */
/**
 * @typedef {{type: 'progress', progress: import('./engine.js').LoadProgress}
 *   | {type: 'loaded', info: Engine['info']}
 *   | {type: 'load-error', error: SerializedError}
 *   | {type: 'stream-start', id: number}
 *   | {type: 'chunk', id: number, chunk: import('./openai-shapes.js').ChatCompletionChunk}
 *   | {type: 'end', id: number}
 *   | {type: 'completion', id: number, completion: import('./openai-shapes.js').ChatCompletion}
 *   | {type: 'error', id: number, error: SerializedError}
 *   | {type: 'unloaded'}} FromWorker
 */
/** @typedef {{name: string, message: string}} SerializedError */
/** @typedef {import('./engine.js').Engine} Engine */

export {};
