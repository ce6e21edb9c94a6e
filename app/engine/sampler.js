// sampler.js: choosing the next token, as model_prep/sampling.py does.
//   greedy (temperature 0): the GPU's argmax, which forward() returns; ties go to the lowest id there.
//   otherwise: softmax(logits / temperature) in f64, keep the smallest most-likely-first prefix whose mass reaches
//   top_p (ties ordered by id, always at least one token), renormalize, draw with the seeded Prng.
// The draws differ from numpy's (another generator), the distribution does not.

import { InputError } from './errors.js';
import { Prng, randomSeed } from './prng.js';

/** Candidates below this fraction of the top probability are looked at only if the nucleus needs them. */
const FIRST_CUTOFF = 2 ** -12;

export class Sampler {
  /** @param {{temperature?: number, topP?: number, seed?: number | null}} [opts] */
  constructor({ temperature = 0, topP = 1, seed = null } = {}) {
    if (!(typeof temperature === 'number' && temperature >= 0 && Number.isFinite(temperature))) {
      throw new InputError(`temperature must be a number >= 0, got ${temperature}`);
    }
    if (!(typeof topP === 'number' && topP > 0 && topP <= 1)) throw new InputError(`top_p must be in (0, 1], got ${topP}`);
    if (seed != null && !Number.isSafeInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`);
    this.temperature = temperature;
    this.topP = topP;
    this.prng = new Prng(seed ?? randomSeed());
  }

  /** True when the GPU argmax decides and no logits need to come back. */
  get greedy() {
    return this.temperature === 0;
  }

  /**
   * The next token from one forward() result.
   * @param {{token: number, logits?: Float32Array}} step  token: the GPU argmax; logits: f32[vocab] (needed unless greedy)
   */
  pick(step) {
    if (this.greedy) return step.token;
    if (!step.logits) throw new Error('sampling needs logits: call forward(..., {logits: true})');
    return this.sample(step.logits);
  }

  /**
   * Temperature + top-p draw from logits f32[vocab].
   * @param {Float32Array} logits
   * @returns {number} token id
   */
  sample(logits) {
    const n = logits.length;
    const invT = 1 / this.temperature;
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
    // unnormalized probabilities p[i] = exp((logit - max) / T), the top one is 1
    const p = new Float64Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) total += p[i] = Math.exp((logits[i] - max) * invT);
    const r = this.prng.random();
    if (this.topP >= 1) return drawInIdOrder(p, r * total);
    // The nucleus is a prefix of the sort by (-p, id). Tokens at or above a cutoff come before all tokens under it,
    // so sorting only those gives the same prefix once their mass reaches top_p; else lower the cutoff.
    const need = this.topP * total;
    for (let cutoff = FIRST_CUTOFF; ; cutoff = cutoff > 2 ** -1000 ? cutoff * FIRST_CUTOFF : 0) {
      const ids = [];
      let mass = 0;
      for (let i = 0; i < n; i++) {
        if (p[i] >= cutoff) {
          ids.push(i);
          mass += p[i];
        }
      }
      if (mass < need && cutoff > 0) continue;
      ids.sort((a, b) => p[b] - p[a] || a - b);
      let keep = 0;
      let cum = 0;
      while (keep < ids.length) {
        cum += p[ids[keep++]];
        if (cum >= need) break;
      }
      const target = r * cum; // draw inside the kept mass
      let acc = 0;
      for (let k = 0; k < keep; k++) {
        acc += p[ids[k]];
        if (acc > target) return ids[k];
      }
      return ids[keep - 1];
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
