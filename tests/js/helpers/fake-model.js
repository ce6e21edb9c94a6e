// fake-model.js: a Model (app/engine/gpu/model.js's contract) with no GPU behind it, for the engine's unit tests.
// It keeps a KV cache of token ids by position, and answers like a model that has learned one reply: after the
// generation prompt it emits `reply` token by token, then EOS. Every forward() call is recorded.

/**
 * @typedef {object} ForwardCall
 * @property {number[]} ids
 * @property {number} pos
 * @property {boolean} logits
 */

export class FakeModel {
  /**
   * @param {object} opts
   * @param {any} opts.manifest           manifest.json (name, generation, chat_template, config.vocab_size)
   * @param {number[]} opts.marker        token ids that end the generation prompt ("<|im_start|>assistant\n")
   * @param {number[]} opts.reply         what the model answers after the marker
   * @param {number} [opts.context]       KV positions
   * @param {(call: ForwardCall) => Promise<void> | void} [opts.onForward]  runs inside each forward (hooks)
   */
  constructor({ manifest, marker, reply, context = 512, onForward }) {
    this.manifest = manifest;
    this.config = manifest.config;
    this.context = context;
    this.marker = marker;
    this.reply = reply;
    this.eos = manifest.generation.eos_token_ids[0];
    this.onForward = onForward;
    /** @type {number[]} token ids in the cache, by position */
    this.cache = [];
    /** @type {ForwardCall[]} */
    this.calls = [];
    this.destroyed = false;
  }

  /**
   * @param {number[]} ids
   * @param {number} pos
   * @param {{logits?: boolean}} [opts]
   */
  async forward(ids, pos, opts = {}) {
    const call = { ids: [...ids], pos, logits: !!opts.logits };
    this.calls.push(call);
    await this.onForward?.(call);
    await new Promise((resolve) => setTimeout(resolve, 0)); // yield, as a GPU round trip does
    if (this.destroyed) throw new Error('destroyed');
    if (pos > this.cache.length) throw new Error(`forward at ${pos} but only ${this.cache.length} positions are filled`);
    if (pos + ids.length > this.context) throw new Error(`positions past the context ${this.context}`);
    this.cache.length = pos;
    this.cache.push(...ids);
    const token = this.next();
    if (!opts.logits) return { token };
    const logits = new Float32Array(this.config.vocab_size).fill(-5);
    logits[token] = 12; // the sampled token is nearly certain at temperature <= 1
    return { token, logits };
  }

  /** The answer at the last filled position: the reply's next token after the last marker, else EOS. */
  next() {
    const c = this.cache;
    const m = this.marker;
    for (let end = c.length; end >= m.length; end--) {
      if (m.every((id, i) => c[end - m.length + i] === id)) {
        const k = c.length - end;
        return k < this.reply.length ? this.reply[k] : this.eos;
      }
    }
    return this.eos;
  }

  destroy() {
    this.destroyed = true;
  }
}
