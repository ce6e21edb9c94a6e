// completion.js: one streamed answer gathered whole, for the task screens. It keeps what the card and the audit need:
// the text, how it ended (finish_reason; `stopped` when the user or a switch aborted it), the per-token
// log-probabilities (OpenAI's logprobs.content, for the decisive field's confidence), usage and the engine's timings.

import { isAbort, messageOf } from './errors.js';

/**
 * @typedef {object} Gathered
 * @property {string} content
 * @property {string | null} finish_reason  the engine's; null when the answer was stopped or broke off
 * @property {boolean} stopped  aborted before the engine finished it
 * @property {{token: string, logprob: number}[]} logprobs
 * @property {Record<string, number> | null} usage
 * @property {Record<string, number> | null} timings
 * @property {string | null} error  why the answer failed, when the engine failed (not an abort)
 */

/**
 * Reads an OpenAI chunk stream to its end. It never throws: an abort ends it as `stopped`, any other failure sets
 * `error`; what was written so far is kept either way.
 * @param {AsyncIterable<any>} stream
 * @param {(text: string) => void} [onText]  called with the text so far after each content delta
 * @returns {Promise<Gathered>}
 */
export async function gather(stream, onText) {
  /** @type {Gathered} */
  const out = { content: '', finish_reason: null, stopped: false, logprobs: [], usage: null, timings: null, error: null };
  try {
    for await (const chunk of stream) {
      if (chunk.usage) out.usage = chunk.usage;
      if (chunk.timings) out.timings = chunk.timings;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      for (const t of choice.logprobs?.content ?? []) out.logprobs.push({ token: t.token, logprob: t.logprob });
      const delta = choice.delta?.content;
      if (delta) {
        out.content += delta;
        onText?.(out.content);
      }
      if (choice.finish_reason) out.finish_reason = choice.finish_reason;
    }
  } catch (e) {
    out.finish_reason = null;
    if (isAbort(e)) out.stopped = true;
    else out.error = messageOf(e);
  }
  return out;
}
