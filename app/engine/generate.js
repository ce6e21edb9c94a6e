// generate.js: the token loop, model_prep/reference/engine.py `generate_picks`: prefill (reusing the cache), then pick a
// token, stop at EOS (not yielded), at max_tokens, at the end of the context, or when the grammar allows nothing but
// a stop token next (the output is complete: no more model steps); run each new token to get the next.
// Under a grammar, each forward() gets the grammar's bitmask: on the greedy path the GPU's argmax applies it and
// returns the masked log-probability, and no logits come back; when the sampler needs logits (sampling, bias,
// penalties, top_logprobs) it applies the same mask on the CPU.

import { ContextOverflowError, InputError, throwIfAborted } from './errors.js';

/** @typedef {import('./kv-session.js').KvSession} KvSession */
/** @typedef {import('./sampler.js').Sampler} Sampler */
/** @typedef {import('./sampler.js').Pick} Pick */
/** @typedef {import('./grammar.js').Constraint} Constraint */

/**
 * Throws unless the prompt fits the context with room for one new token.
 * @param {number} promptTokens
 * @param {number} context  KV positions
 */
export function checkPromptFits(promptTokens, context) {
  if (promptTokens === 0) throw new InputError('the prompt is empty');
  if (promptTokens >= context) {
    throw new ContextOverflowError(`the prompt has ${promptTokens} tokens but the context holds ${context}; ` +
      'shorten the conversation (or start a new one)');
  }
}

/**
 * @typedef {object} LoopOptions
 * @property {number} maxTokens
 * @property {Sampler} sampler
 * @property {ReadonlySet<number>} eosIds
 * @property {Constraint | null} [constraint]  the grammar the output must follow
 * @property {AbortSignal | null} [signal]
 */

/**
 * Yields the picked tokens with their log-probabilities. report.finish ends as "stop" (EOS or a complete grammar)
 * or "length" (max_tokens or the context's end). An aborted signal stops the loop between tokens with an AbortError.
 * @param {KvSession} session
 * @param {number[]} prompt
 * @param {LoopOptions} opts
 * @param {{finish: 'stop' | 'length'}} report
 * @returns {AsyncGenerator<Pick, void, void>}
 */
export async function* generatePicks(session, prompt, { maxTokens, sampler, eosIds, constraint = null, signal }, report) {
  report.finish = 'length';
  checkPromptFits(prompt.length, session.context);
  throwIfAborted(signal);
  const logits = sampler.needsLogits;
  /** The mask for the next forward: on the GPU when it picks; the CPU applies it when logits come back. */
  const step = async () => {
    const mask = constraint ? await constraint.bitmask() : null;
    return { mask, opts: { logits, mask: logits ? null : mask } };
  };
  let next = await step();
  let out = await session.prefill(prompt, next.opts);
  let pos = prompt.length;
  for (let n = 0; n < maxTokens; n++) {
    const pick = sampler.pick(out, next.mask);
    if (eosIds.has(pick.token)) {
      report.finish = 'stop';
      return;
    }
    constraint?.accept(pick.token);
    yield pick;
    if (constraint && await constraint.finished()) {
      report.finish = 'stop';
      return;
    }
    if (n + 1 === maxTokens || pos >= session.context) return;
    throwIfAborted(signal);
    next = await step();
    out = await session.run([pick.token], pos, next.opts);
    pos += 1;
  }
}

/**
 * Token ids only (model_prep/reference/engine.py `generate_ids`).
 * @param {KvSession} session
 * @param {number[]} prompt
 * @param {LoopOptions} opts
 * @param {{finish: 'stop' | 'length'}} report
 * @returns {AsyncGenerator<number, void, void>}
 */
export async function* generateIds(session, prompt, opts, report) {
  for await (const pick of generatePicks(session, prompt, opts, report)) yield pick.token;
}
