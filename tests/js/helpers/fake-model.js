// fake-model.js: a Model (app/engine/gpu/model.js's contract) with no GPU behind it, for the engine's unit tests.
// It keeps a KV cache of token ids by position, and answers like a model that has learned one reply: after the
// generation prompt it emits `reply` token by token, then EOS. Every forward() call is recorded. Its logits are
// 12 for that token and -5 for every other; under a grammar's token mask it answers as the GPU argmax does (the best
// allowed logit, the lowest id on a tie, with its log-probability under the softmax over the allowed tokens).

import { GrammarError } from '../../../app/engine/errors.js';

/**
 * @typedef {object} ForwardCall
 * @property {number[]} ids
 * @property {number} pos
 * @property {boolean} logits
 * @property {Uint32Array} [mask]  a copy of opts.mask, only when one was given
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
   * @param {{logits?: boolean, mask?: Uint32Array | null}} [opts]
   * @returns {Promise<{token: number, logprob: number, logits?: Float32Array}>}
   */
  async forward(ids, pos, opts = {}) {
    /** @type {ForwardCall} */
    const call = { ids: [...ids], pos, logits: !!opts.logits };
    if (opts.mask) call.mask = Uint32Array.from(opts.mask);
    this.calls.push(call);
    await this.onForward?.(call);
    await new Promise((resolve) => setTimeout(resolve, 0)); // yield, as a GPU round trip does
    if (this.destroyed) throw new Error('destroyed');
    if (pos > this.cache.length) throw new Error(`forward at ${pos} but only ${this.cache.length} positions are filled`);
    if (pos + ids.length > this.context) throw new Error(`positions past the context ${this.context}`);
    this.cache.length = pos;
    this.cache.push(...ids);
    const logits = new Float32Array(this.config.vocab_size).fill(-5);
    logits[this.next()] = 12; // the sampled token is nearly certain at temperature <= 1
    const { token, logprob } = maskedArgmax(logits, opts.mask ?? null);
    return opts.logits ? { token, logprob, logits } : { token, logprob };
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

/**
 * The GPU argmax's contract (webgpu_shaders/argmax.wgsl): the best logit among the tokens `mask` allows (all without
 * one), the lowest id on a tie, and its log-probability under the softmax over the allowed tokens.
 * @param {Float32Array} logits
 * @param {Uint32Array | null} mask  bit i % 32 of word i / 32 set = token i allowed
 */
export function maskedArgmax(logits, mask) {
  if (mask && mask.length !== Math.ceil(logits.length / 32)) throw new GrammarError(`mask of ${mask.length} words`);
  const allowed = (/** @type {number} */ i) => !mask || ((mask[i >>> 5] >>> (i & 31)) & 1) === 1;
  let token = -1;
  for (let i = 0; i < logits.length; i++) if (allowed(i) && (token < 0 || logits[i] > logits[token])) token = i;
  if (token < 0) throw new GrammarError('no token is allowed by the grammar at this step');
  let others = 0; // sum of exp(l - max) over the other allowed tokens
  for (let i = 0; i < logits.length; i++) if (i !== token && allowed(i)) others += Math.exp(logits[i] - logits[token]);
  return { token, logprob: -Math.log1p(others) };
}
