// prng.js: a small seeded pseudo-random generator, so that sampling with a seed repeats exactly on every host.
// xoshiro128** (32-bit state words, period 2^128 - 1), its state filled by a splitmix-style mixer from the seed.

/** splitmix32-style finalizer: a well-mixed u32 from a u32. @param {number} z */
function mix32(z) {
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** @param {number} x @param {number} k */
const rotl = (x, k) => (x << k) | (x >>> (32 - k));

export class Prng {
  /** @param {number} seed  any safe integer (OpenAI's seed); its low and high 32 bits both count */
  constructor(seed) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0; // two's complement high word for negative seeds
    let counter = lo ^ mix32(hi ^ 0x6a09e667);
    /** @type {Uint32Array} state words s0..s3 */
    this.s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      counter = (counter + 0x9e3779b9) >>> 0;
      this.s[i] = mix32(counter);
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1; // the all-zero state is a fixed point
  }

  /** The next u32. */
  nextUint32() {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits (like numpy's Generator.random). */
  random() {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 2 ** 26 + lo) / 2 ** 53;
  }
}

/** A seed for requests that name none. */
export function randomSeed() {
  const words = new Uint32Array(2);
  crypto.getRandomValues(words);
  return (words[0] & 0x1fffff) * 2 ** 32 + words[1]; // 53 bits: a safe integer
}
