// errors.js: one error class per way loading or running a model can fail, each message saying what to do.
// The host layer tells them apart with `instanceof` (or `err.name`, which survives postMessage from a Worker).

/** Base class: every error the GPU engine throws on purpose. */
export class EngineError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** manifest.json is missing fields, names another format, or a format_version this engine does not know. */
export class FormatError extends EngineError {}

/** A package file could not be fetched (network, HTTP status, aborted). */
export class FetchError extends EngineError {}

/** A fetched file's size or sha256 differs from manifest.json: the download or the cache is corrupt. */
export class IntegrityError extends EngineError {}

/** The adapter or device cannot hold the package (limits, memory). */
export class CapacityError extends EngineError {}

/** A WGSL kernel failed to compile or a pipeline / bind group failed validation: an engine bug or a driver bug. */
export class ShaderError extends EngineError {}

/** forward() was asked for positions past the KV cache allocated at load time, or got bad token ids. */
export class ContextError extends EngineError {}

/**
 * The grammar's token bitmask allows no token at this step (the grammar and the tokenizer disagree, or the grammar
 * cannot be continued), or does not fit the vocabulary. The answer cannot be constrained, so none is given.
 */
export class GrammarError extends EngineError {}
