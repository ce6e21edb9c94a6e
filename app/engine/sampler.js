// sampler.js: choosing the next token, as model_prep/reference/sampling.py does, in the same order:
//   1. logit_bias added (token id -> -100..100), then frequency_penalty x (times the token came in this completion)
//      + presence_penalty (once it came at all);
//   2. the grammar's mask: tokens it does not allow get -inf. The reported log-probability is the log softmax of
//      these processed logits, before temperature;
//   3. greedy (temperature 0): the largest, ties to the lowest id (as the GPU argmax). Otherwise
//      softmax(logits / temperature), then top_k (0 = all), then top_p (the smallest most-likely-first prefix, ties
//      by id, whose mass reaches top_p), then min_p (drop tokens below min_p times the top one's probability),
//      renormalized, one draw with the seeded Prng.
// When greedy and nothing changes the logits (no bias, no penalties, no top_logprobs), the GPU's masked argmax and
// its log-probability are the pick and no logits come back (`needsLogits` false). The draws differ from numpy's
// (another generator), the distribution does not.

import { InputError } from './errors.js';
import { Prng, randomSeed } from './prng.js';

/** Candidates below this fraction of the top probability are looked at only if the nucleus needs them. */
const FIRST_CUTOFF = 2 ** -12;

/**
 * @typedef {object} Pick  one chosen token (sampling.py's Pick)
 * @property {number} token
 * @property {number} logprob           of the token under step 2's distribution
 * @property {[number, number][]} top   the top_logprobs most likely [id, logprob], most likely first
 */
/**
 * @typedef {object} SamplerOptions
 * @property {number} [temperature]       0 = greedy
 * @property {number} [topP]              (0, 1]
 * @property {number | null} [seed]
 * @property {number} [topK]              0 = no limit
 * @property {number} [minP]              [0, 1]
 * @property {number} [frequencyPenalty]  [-2, 2]
 * @property {number} [presencePenalty]   [-2, 2]
 * @property {Map<number, number> | Record<string, number> | null} [logitBias]  token id -> added to its logit
 * @property {number} [topLogprobs]       [0, 20]
 */

/** @param {unknown} x @returns {x is number} */
const isNumber = (x) => typeof x === 'number' && Number.isFinite(x);

export class Sampler {
  /** @param {SamplerOptions} [opts] */
  constructor({
    temperature = 0, topP = 1, seed = null, topK = 0, minP = 0, frequencyPenalty = 0, presencePenalty = 0,
    logitBias = null, topLogprobs = 0,
  } = {}) {
    if (!(isNumber(temperature) && temperature >= 0)) throw new InputError(`temperature must be >= 0, got ${temperature}`);
    if (!(isNumber(topP) && topP > 0 && topP <= 1)) throw new InputError(`top_p must be in (0, 1], got ${topP}`);
    if (seed != null && !Number.isSafeInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`);
    if (!(Number.isInteger(topK) && topK >= 0)) {
      throw new InputError(`top_k must be an integer >= 0 (0 = no limit), got ${topK}`);
    }
    if (!(isNumber(minP) && minP >= 0 && minP <= 1)) throw new InputError(`min_p must be in [0, 1], got ${minP}`);
    for (const [name, v] of /** @type {[string, number][]} */ ([['frequency_penalty', frequencyPenalty],
      ['presence_penalty', presencePenalty]])) {
      if (!(isNumber(v) && v >= -2 && v <= 2)) throw new InputError(`${name} must be in [-2, 2], got ${v}`);
    }
    if (!(Number.isInteger(topLogprobs) && topLogprobs >= 0 && topLogprobs <= 20)) {
      throw new InputError(`top_logprobs must be in [0, 20], got ${topLogprobs}`);
    }
    this.temperature = temperature;
    this.topP = topP;
    this.topK = topK;
    this.minP = minP;
    this.frequencyPenalty = frequencyPenalty;
    this.presencePenalty = presencePenalty;
    /** @type {Map<number, number>} */
    this.logitBias = new Map(logitBias instanceof Map ? logitBias
      : Object.entries(logitBias ?? {}).map(([k, v]) => [Number(k), v]));
    this.topLogprobs = topLogprobs;
    /** @type {number | null} the request's seed (null: a random one) */
    this.seed = seed ?? null;
    this.prng = new Prng(seed ?? randomSeed());
    /** @type {Map<number, number>} token -> times generated in this completion (for the penalties) */
    this.counts = new Map();
  }

  /** True when the GPU argmax decides the token. */
  get greedy() {
    return this.temperature === 0;
  }

  /**
   * Whether forward() must return the logits: sampling, or anything that changes them or reports beyond the
   * chosen token (logit_bias, penalties, top_logprobs). Otherwise the GPU's masked argmax is the pick.
   */
  get needsLogits() {
    return !this.greedy || this.logitBias.size > 0 || this.frequencyPenalty !== 0 || this.presencePenalty !== 0 ||
      this.topLogprobs > 0;
  }

  /**
   * The next token from one forward() result.
   * @param {{token: number, logprob?: number, logits?: Float32Array}} step  token, logprob: the GPU's masked argmax;
   *   logits: f32[vocab], raw (needed when needsLogits)
   * @param {Uint32Array | null} [mask]  the grammar's bitmask (bit i % 32 of word i / 32 = token i allowed)
   * @returns {Pick}
   */
  pick(step, mask = null) {
    if (!this.needsLogits) {
      this.count(step.token);
      return { token: step.token, logprob: step.logprob ?? 0, top: [] };
    }
    if (!step.logits) throw new Error('sampling needs logits: call forward(..., {logits: true})');
    const z = this.process(step.logits, mask);
    const token = this.greedy ? argmax(z) : this.draw(z);
    this.count(token);
    const lse = logSumExp(z);
    /** @type {[number, number][]} */
    const top = [];
    if (this.topLogprobs) {
      for (const i of topIds(z, this.topLogprobs)) if (Number.isFinite(z[i])) top.push([i, z[i] - lse]);
    }
    return { token, logprob: z[token] - lse, top };
  }

  /** @param {number} token */
  count(token) {
    this.counts.set(token, (this.counts.get(token) ?? 0) + 1);
  }

  /**
   * Steps 1 and 2, in f64.
   * @param {Float32Array} logits
   * @param {Uint32Array | null} mask
   */
  process(logits, mask) {
    const z = Float64Array.from(logits);
    for (const [token, bias] of this.logitBias) if (token >= 0 && token < z.length) z[token] += bias;
    if (this.frequencyPenalty || this.presencePenalty) {
      for (const [token, n] of this.counts) z[token] -= this.frequencyPenalty * n + this.presencePenalty;
    }
    if (mask) {
      let any = false;
      for (let i = 0; i < z.length; i++) {
        if (((mask[i >>> 5] >>> (i & 31)) & 1) === 0) z[i] = -Infinity;
        else any = true;
      }
      if (!any) throw new Error('the grammar allows no token here');
    }
    return z;
  }

  /**
   * Temperature, top_k, top_p and min_p, then one draw (step 3 when not greedy).
   * @param {Float64Array} z  processed logits
   * @returns {number} token id
   */
  draw(z) {
    const n = z.length;
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (z[i] > max) max = z[i];
    // unnormalized probabilities p[i] = exp((z - max) / T): the top one is 1, masked ones 0
    const p = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) total += p[i] = Math.exp((z[i] - max) / this.temperature);
    const r = this.prng.random();
    if (this.topK === 0 && this.topP >= 1 && this.minP === 0) return drawInIdOrder(p, r * total);
    const { ids, keep } = this.nucleus(p, total);
    let cum = 0;
    for (let k = 0; k < keep; k++) cum += p[ids[k]];
    const target = r * cum; // draw inside the kept mass
    let acc = 0;
    for (let k = 0; k < keep; k++) {
      acc += p[ids[k]];
      if (acc > target) return ids[k];
    }
    return ids[keep - 1];
  }

  /**
   * The kept tokens: a prefix of the order (-p, id) cut by top_k, then top_p, then min_p. Tokens at or above a
   * cutoff come before all tokens under it, so sorting only those gives the same prefix once it is long enough (or
   * heavy enough) to decide; else the cutoff is lowered.
   * @param {Float64Array} p  unnormalized probabilities (max 1)
   * @param {number} total    their sum
   * @returns {{ids: number[], keep: number}}
   */
  nucleus(p, total) {
    const n = p.length;
    for (let cutoff = Math.max(FIRST_CUTOFF, this.minP); ; cutoff = cutoff > 2 ** -1000 ? cutoff * FIRST_CUTOFF : 0) {
      const ids = [];
      let mass = 0;
      for (let i = 0; i < n; i++) {
        if (p[i] >= cutoff && p[i] > 0) {
          ids.push(i);
          mass += p[i];
        }
      }
      const complete = cutoff === 0 || mass >= total; // every token with p > 0 is here
      if (this.topK && ids.length < this.topK && !complete) continue;
      ids.sort((a, b) => p[b] - p[a] || a - b);
      let keep = this.topK ? Math.min(ids.length, this.topK) : ids.length;
      // the mass top_p is taken of: the top_k's when top_k cuts, else everything's
      let base = total;
      if (this.topK && keep === this.topK) {
        base = 0;
        for (let k = 0; k < keep; k++) base += p[ids[k]];
      }
      const need = this.topP * base;
      let cum = 0;
      let reached = 0;
      while (reached < keep) {
        cum += p[ids[reached++]];
        if (cum >= need) break;
      }
      // the candidates' mass falls short of top_p: tokens under the cutoff belong to the nucleus, unless min_p drops
      // them all anyway (every token at or above min_p is a candidate once the cutoff is down to min_p)
      if (cum < need && !complete && reached === ids.length && cutoff > this.minP) continue;
      keep = Math.min(keep, reached);
      if (this.minP > 0) {
        let above = 0;
        while (above < keep && p[ids[above]] >= this.minP * p[ids[0]]) above++;
        keep = Math.max(1, Math.min(keep, above));
      }
      return { ids, keep };
    }
  }
}

/**
 * The first id whose running sum of p exceeds target (the last nonzero one if rounding leaves it short).
 * @param {Float64Array} p
 * @param {number} target
 */
function drawInIdOrder(p, target) {
  let acc = 0;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] > 0) last = i;
    acc += p[i];
    if (acc > target) return i;
  }
  return last;
}

/** @param {Float64Array} z  the largest, ties to the lowest id */
function argmax(z) {
  let best = 0;
  for (let i = 1; i < z.length; i++) if (z[i] > z[best]) best = i;
  return best;
}

/** @param {Float64Array} z */
function logSumExp(z) {
  let max = -Infinity;
  for (let i = 0; i < z.length; i++) if (z[i] > max) max = z[i];
  let sum = 0;
  for (let i = 0; i < z.length; i++) sum += Math.exp(z[i] - max);
  return max + Math.log(sum);
}

/**
 * The k largest ids of z, largest first, ties by lowest id (numpy's stable argsort of -z).
 * @param {Float64Array} z
 * @param {number} k
 */
function topIds(z, k) {
  /** @type {number[]} */
  const best = [];
  for (let i = 0; i < z.length; i++) {
    if (best.length === k && !(z[i] > z[best[k - 1]])) continue;
    let at = best.length;
    while (at > 0 && z[i] > z[best[at - 1]]) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}
