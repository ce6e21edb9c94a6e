// generate.js: the token loop, model_prep/reference.py `generate_ids`: prefill (reusing the cache), then pick a
// token, stop at EOS (not yielded), at max_tokens, or at the end of the context; run each new token to get the next.

import { ContextOverflowError, InputError, throwIfAborted } from './errors.js';

/** @typedef {import('./kv-session.js').KvSession} KvSession */
/** @typedef {import('./sampler.js').Sampler} Sampler */

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
 * Yields token ids. report.finish ends as "stop" (EOS) or "length" (max_tokens or the context's end).
 * An aborted signal stops the loop between tokens with an AbortError.
 * @param {KvSession} session
 * @param {number[]} prompt
 * @param {{maxTokens: number, sampler: Sampler, eosIds: ReadonlySet<number>, signal?: AbortSignal | null}} opts
 * @param {{finish: 'stop' | 'length'}} report
 * @returns {AsyncGenerator<number, void, void>}
 */
export async function* generateIds(session, prompt, { maxTokens, sampler, eosIds, signal }, report) {
  report.finish = 'length';
  checkPromptFits(prompt.length, session.context);
  throwIfAborted(signal);
  const wantLogits = !sampler.greedy;
  let step = await session.prefill(prompt, wantLogits);
  let pos = prompt.length;
  for (let n = 0; n < maxTokens; n++) {
    const token = sampler.pick(step);
    if (eosIds.has(token)) {
      report.finish = 'stop';
      return;
    }
    yield token;
    if (n + 1 === maxTokens || pos >= session.context) return;
    throwIfAborted(signal);
    step = await session.run([token], pos, wantLogits);
    pos += 1;
  }
}
