// kv-session.js: which token ids the model's KV cache holds, so that a new request whose prompt extends the last
// conversation runs only the new suffix (model_prep/reference/engine.py `_prefill`). Positions 0 .. cached.length - 1 hold
// the K/V of `cached`; anything the model wrote past that is garbage that the next forward() overwrites.

/**
 * @typedef {object} StepModel  what the session needs of a Model (app/engine/gpu/model.js)
 * @property {number} context  KV positions allocated
 * @property {(ids: number[], pos: number, opts?: {logits?: boolean, mask?: Uint32Array | null}) =>
 *            Promise<Step>} forward
 */
/** @typedef {{logits?: boolean, mask?: Uint32Array | null}} StepOptions */
/**
 * @typedef {{token: number, logprob: number, logits?: Float32Array}} Step  argmax of the last position among the
 *   tokens the mask allows, its log-probability under the softmax over them (+ the raw logits f32[vocab])
 */

export class KvSession {
  /** @param {StepModel} model */
  constructor(model) {
    this.model = model;
    /** @type {number[]} token ids whose K/V are in the cache, by position */
    this.cached = [];
    /** prompt tokens the last prefill actually ran (the rest came from the cache) */
    this.prefilled = 0;
  }

  get context() {
    return this.model.context;
  }

  /**
   * Runs ids at positions pos .. pos + ids.length - 1 and records them as cached.
   * @param {number[]} ids
   * @param {number} pos  must be <= cached.length
   * @param {StepOptions | boolean} opts  logits: return the raw logits; mask: the grammar's token bitmask for the
   *   argmax (boolean: logits alone)
   * @returns {Promise<Step>}
   */
  async run(ids, pos, opts) {
    if (pos > this.cached.length) throw new RangeError(`position ${pos} is past the ${this.cached.length} cached tokens`);
    this.cached.length = pos; // positions >= pos are overwritten now; if forward fails they stay unknown
    const { logits = false, mask = null } = typeof opts === 'boolean' ? { logits: opts } : opts;
    const step = await this.model.forward(ids, pos, mask ? { logits, mask } : { logits });
    for (const id of ids) this.cached.push(id);
    return step;
  }

  /**
   * Reuses the longest cached prefix of `prompt` and runs the rest in one call; the last prompt token always runs
   * (its output picks the first new token).
   * @param {number[]} prompt  non-empty
   * @param {StepOptions | boolean} opts
   */
  prefill(prompt, opts) {
    let common = 0;
    const n = Math.min(this.cached.length, prompt.length);
    while (common < n && this.cached[common] === prompt[common]) common++;
    common = Math.min(common, prompt.length - 1);
    this.prefilled = prompt.length - common;
    return this.run(prompt.slice(common), common, opts);
  }

  /** Forgets the cache (a failed or destroyed model). */
  reset() {
    this.cached = [];
  }
}
