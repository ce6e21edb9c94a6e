// forward-args.js: the checks every Model.forward() runs before any work, shared by the WebGPU model (model.js) and
// the CPU model (../cpu/model.js), so both refuse the same calls with the same messages.

import { ContextError, GrammarError } from './errors.js';

/**
 * Throws ContextError for no ids, positions past the KV cache or ids outside the vocabulary, GrammarError for a mask
 * of the wrong type or length.
 * @param {ArrayLike<number>} ids  token ids of this call
 * @param {number} pos  position of ids[0]
 * @param {Uint32Array | null | undefined} mask  allowed-token bitmask, ceil(vocab / 32) words, or none
 * @param {{context: number, vocab: number, maskWords: number}} model  KV positions allocated, vocabulary size, mask words
 */
export function checkForwardArgs(ids, pos, mask, { context, vocab, maskWords }) {
  const n = ids.length;
  if (n < 1) throw new ContextError('forward() needs at least one token id');
  if (!Number.isInteger(pos) || pos < 0 || pos + n > context) {
    throw new ContextError(`positions ${pos}..${pos + n - 1} exceed the ${context} KV positions allocated: ` +
      'start a new conversation, shorten the prompt, or load the model with a larger context');
  }
  for (let i = 0; i < n; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new ContextError(`token id ${id} is outside the vocabulary (0..${vocab - 1})`);
  }
  if (mask && !(mask instanceof Uint32Array && mask.length === maskWords)) {
    throw new GrammarError(`the token mask must be a Uint32Array of ${maskWords} words (ceil(${vocab} / 32)), ` +
      `got ${mask instanceof Uint32Array ? mask.length : typeof mask}: build it for this model's vocabulary`);
  }
}
