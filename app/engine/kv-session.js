// kv-session.js: which token ids the model's KV cache holds, so that a new request whose prompt extends the last
// conversation runs only the new suffix (model_prep/reference/engine.py `_prefill`). Positions 0 .. cached.length - 1 hold
// the K/V of `cached`; anything the model wrote past that is garbage that the next forward() overwrites.
//
// One conversation more is kept aside, where the model has KV slots (saveKv / restoreKv: two copies of the cache's
// first positions): when a prompt would overwrite MIN_KEPT or more cached tokens (another conversation, a structured
// request after a chat), the cache's sequence is first saved to a slot; when a later prompt shares more with the kept
// sequence than with the cache, the kept positions come back (and the cache's sequence goes to the other slot). So a
// task form and a chat used in turns, or repeated structured requests with a long fixed system prompt and schema
// between chats, each run only their new tokens.

/** Fewer tokens than this are not worth a copy of the KV cache. */
export const MIN_KEPT = 32;


/** @param {number[]} a @param {number[]} b  the length of their common prefix */
function commonPrefix(a, b) {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * @typedef {object} StepModel  what the session needs of a Model (app/engine/gpu/model.js)
 * @property {number} context  KV positions allocated
 * @property {(ids: number[], pos: number, opts?: {logits?: boolean, mask?: Uint32Array | null}) =>
 *            Promise<Step>} forward
 * @property {number} [kvSlotPositions]  positions each KV slot holds (0 or absent: no slots)
 * @property {(slot: number, n: number) => Promise<void>} [saveKv]  cache positions 0 .. n-1 into slot 0 or 1
 * @property {(slot: number, n: number) => Promise<void>} [restoreKv]  slot positions 0 .. n-1 back into the cache
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
    /** @type {{ids: number[], slot: number} | null} the sequence kept aside in a KV slot, the other slot free */
    this.kept = null;
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
  async prefill(prompt, opts) {
    let common = commonPrefix(this.cached, prompt);
    try {
      common = await this.keepAside(prompt, common);
    } catch (e) {
      // a slot could not be made or copied: the cache may be anything now, and nothing is kept
      console.warn('KV slots:', /** @type {Error} */ (e).message);
      this.cached = [];
      this.kept = null;
      common = 0;
    }
    common = Math.min(common, prompt.length - 1);
    this.prefilled = prompt.length - common;
    return this.run(prompt.slice(common), common, opts);
  }

  /**
   * Before `prompt` runs from position `common`: brings the kept sequence back if it shares more with the prompt
   * (the cache's sequence going to the free slot), or keeps the cache's sequence aside if the prompt would overwrite
   * MIN_KEPT or more of its tokens. Returns the positions the prompt can now start from.
   * @param {number[]} prompt @param {number} common  the prompt's common prefix with `cached`
   */
  async keepAside(prompt, common) {
    const m = this.model;
    const positions = m.kvSlotPositions ?? 0;
    if (!m.saveKv || !m.restoreKv || positions < MIN_KEPT) return common;
    const outgoing = Math.min(this.cached.length, positions);
    const kept = this.kept;
    const back = kept ? commonPrefix(kept.ids, prompt) : 0;
    if (kept && back > common && back >= MIN_KEPT) {
      const free = 1 - kept.slot;
      const leaving = outgoing >= MIN_KEPT ? { ids: this.cached.slice(0, outgoing), slot: free } : null;
      this.kept = null;
      if (leaving) await m.saveKv(free, outgoing);
      this.cached = [];
      await m.restoreKv(kept.slot, back);
      this.cached = kept.ids.slice(0, back);
      this.kept = leaving;
      return back;
    }
    if (this.cached.length - common >= MIN_KEPT && outgoing >= MIN_KEPT) {
      const slot = kept ? kept.slot : 0; // the newest conversation left replaces the one kept before
      this.kept = null;
      await m.saveKv(slot, outgoing);
      this.kept = { ids: this.cached.slice(0, outgoing), slot };
    }
    return common;
  }

  /** Forgets the cache and the kept sequence (a failed or destroyed model, or asked to). */
  reset() {
    this.cached = [];
    this.kept = null;
  }
}
