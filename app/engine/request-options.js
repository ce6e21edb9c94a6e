// request-options.js: an OpenAI chat.completions.create body -> the engine's options, with the package's generation
// defaults (manifest.generation) for what the request leaves out, and an InputError for what it gets wrong.

import { checkMessages } from './chat-template.js';
import { InputError } from './errors.js';
import { Sampler } from './sampler.js';

/**
 * @typedef {object} ChatRequest  the subset of OpenAI's request body the engine reads
 * @property {unknown} messages                     [{role, content}]
 * @property {boolean} [stream]
 * @property {{include_usage?: boolean} | null} [stream_options]
 * @property {number | null} [max_tokens]          completion tokens at most
 * @property {number | null} [max_completion_tokens] OpenAI's newer name for max_tokens (wins when both are given)
 * @property {number | null} [temperature]         0 = greedy
 * @property {number | null} [top_p]               nucleus mass in (0, 1]
 * @property {number | null} [seed]                integer; repeats a sampled completion exactly
 * @property {string | string[] | null} [stop]     up to 4 stop strings (any number is accepted)
 * @property {number | null} [n]                   only 1
 * @property {AbortSignal | null} [signal]         aborts between tokens (not part of OpenAI's body: its SDK takes it
 *                                                 as a request option; here it rides along)
 */

/**
 * @typedef {object} RequestOptions
 * @property {import('./chat-template.js').Message[]} messages
 * @property {boolean} stream
 * @property {boolean} includeUsage
 * @property {number} maxTokens
 * @property {Sampler} sampler
 * @property {string[]} stops
 * @property {AbortSignal | null} signal
 */

/**
 * @param {ChatRequest} request
 * @param {Record<string, any>} generation  manifest.generation: temperature, top_p, max_tokens defaults
 * @returns {RequestOptions}
 */
export function parseRequest(request, generation = {}) {
  if (!request || typeof request !== 'object') throw new InputError('the request must be an object with messages');
  const messages = checkMessages(request.messages);
  if (request.n != null && request.n !== 1) throw new InputError(`n must be 1 (one choice per request), got ${request.n}`);
  const maxTokens = request.max_completion_tokens ?? request.max_tokens ?? generation.max_tokens ?? 512;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    throw new InputError(`max_tokens must be an integer of at least 1, got ${maxTokens}`);
  }
  const sampler = new Sampler({
    temperature: request.temperature ?? generation.temperature ?? 0,
    topP: request.top_p ?? generation.top_p ?? 1,
    seed: request.seed ?? null,
  });
  const stop = request.stop ?? [];
  const stops = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(stops) || !stops.every((s) => typeof s === 'string')) {
    throw new InputError('stop must be a string or a list of strings');
  }
  const signal = request.signal ?? null;
  if (signal !== null && !(typeof signal === 'object' && 'aborted' in signal)) {
    throw new InputError('signal must be an AbortSignal');
  }
  return {
    messages, stream: request.stream === true, includeUsage: request.stream_options?.include_usage === true,
    maxTokens, sampler, stops: stops.filter((s) => s.length > 0), signal,
  };
}
