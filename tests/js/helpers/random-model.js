// random-model.js: a Model (app/engine/gpu/model.js's contract) whose logits are random but deterministic: each is
// a hash of (the last token id, the position, the token id, the seed), uniform in [-4, 4), minus `penalty` for the
// ids in `penalized` (a test may make it shun some tokens, as a trained model shuns long runs of whitespace). With no
// learned reply, a grammar is all that shapes its answers, which is what the structured-output property test wants.
// Under a mask it answers as the GPU argmax does (the best allowed logit, the lowest id on a tie, its log-probability
// under the softmax over the allowed tokens), looking only at the allowed tokens.

import { GrammarError } from '../../../app/engine/errors.js';

/** @param {number} a @param {number} b @param {number} c @param {number} d  a well-mixed u32 */
function hash(a, b, c, d) {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 15) ^ c, 0x27d4eb2f) ^ Math.imul(d + 0x165667b1, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 13), 0x85ebca6b);
  return (h ^ (h >>> 16)) >>> 0;
}

export class RandomModel {
  /**
   * @param {{manifest: any, context?: number, seed?: number, penalized?: ReadonlySet<number>, penalty?: number}} opts
   */
  constructor({ manifest, context = 1024, seed = 0, penalized = new Set(), penalty = 0 }) {
    this.penalized = penalized;
    this.penalty = penalty;
    this.manifest = manifest;
    this.context = context;
    this.seed = seed;
    this.vocab = manifest.config.vocab_size;
    /** @type {number[]} token ids in the cache, by position */
    this.cache = [];
    this.steps = 0;
  }

  /** @param {number} token @param {number} last @param {number} pos */
  logit(token, last, pos) {
    const v = (hash(last, pos, token, this.seed) / 2 ** 32) * 8 - 4;
    return this.penalized.has(token) ? v - this.penalty : v;
  }

  /**
   * @param {number[]} ids
   * @param {number} pos
   * @param {{logits?: boolean, mask?: Uint32Array | null}} [opts]
   * @returns {Promise<{token: number, logprob: number, logits?: Float32Array}>}
   */
  async forward(ids, pos, opts = {}) {
    if (pos > this.cache.length) throw new Error(`forward at ${pos} but only ${this.cache.length} positions are filled`);
    this.cache.length = pos;
    this.cache.push(...ids);
    this.steps += 1;
    const last = this.cache[this.cache.length - 1];
    const at = this.cache.length;
    const mask = opts.mask ?? null;
    let token = -1;
    let best = -Infinity;
    /** @type {number[]} */
    const values = [];
    for (let w = 0; w < Math.ceil(this.vocab / 32); w++) {
      let bits = mask ? mask[w] : 0xffffffff;
      while (bits) {
        const b = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const id = w * 32 + b;
        if (id >= this.vocab) break;
        const v = this.logit(id, last, at);
        values.push(v);
        if (v > best || (v === best && id < token)) {
          best = v;
          token = id;
        }
      }
    }
    if (token < 0) throw new GrammarError('no token is allowed by the grammar at this step');
    let sum = 0;
    for (const v of values) sum += Math.exp(v - best);
    const out = { token, logprob: -Math.log(sum) };
    if (!opts.logits) return out;
    const logits = new Float32Array(this.vocab);
    for (let id = 0; id < this.vocab; id++) logits[id] = this.logit(id, last, at);
    return { ...out, logits };
  }

  destroy() {}
}
