// openai-shapes.js: the objects OpenAI's chat completions API returns, built in one place.
// https://platform.openai.com/docs/api-reference/chat/object and .../chat-streaming

/** @typedef {'stop' | 'length'} FinishReason */
/** @typedef {{prompt_tokens: number, completion_tokens: number, total_tokens: number}} Usage */
/**
 * @typedef {object} ChatCompletion
 * @property {string} id
 * @property {'chat.completion'} object
 * @property {number} created  Unix seconds
 * @property {string} model
 * @property {{index: number, message: {role: 'assistant', content: string}, logprobs: null,
 *             finish_reason: FinishReason}[]} choices
 * @property {Usage} usage
 */
/**
 * @typedef {object} ChatCompletionChunk
 * @property {string} id  the same for every chunk of one completion
 * @property {'chat.completion.chunk'} object
 * @property {number} created
 * @property {string} model
 * @property {{index: number, delta: {role?: 'assistant', content?: string}, logprobs: null,
 *             finish_reason: FinishReason | null}[]} choices  empty in the usage chunk
 * @property {Usage | null} [usage]  present (null until the last chunk) when stream_options.include_usage
 */

/** @returns {{id: string, created: number}} */
export function newCompletionIdentity() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  const id = `chatcmpl-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  return { id, created: Math.floor(Date.now() / 1000) };
}

/** @param {number} promptTokens @param {number} completionTokens @returns {Usage} */
export function usage(promptTokens, completionTokens) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/**
 * @param {{id: string, created: number}} identity
 * @param {string} model
 * @param {string} content
 * @param {FinishReason} finishReason
 * @param {Usage} usageValue
 * @returns {ChatCompletion}
 */
export function completion(identity, model, content, finishReason, usageValue) {
  return {
    id: identity.id, object: 'chat.completion', created: identity.created, model,
    choices: [{ index: 0, message: { role: 'assistant', content }, logprobs: null, finish_reason: finishReason }],
    usage: usageValue,
  };
}

/**
 * One chunk with a delta (or, with `delta` null, the usage chunk: no choices).
 * @param {{id: string, created: number}} identity
 * @param {string} model
 * @param {{role?: 'assistant', content?: string} | null} delta
 * @param {FinishReason | null} finishReason
 * @param {boolean} includeUsage  add the usage field (null unless given)
 * @param {Usage | null} [usageValue]
 * @returns {ChatCompletionChunk}
 */
export function chunk(identity, model, delta, finishReason, includeUsage, usageValue = null) {
  /** @type {ChatCompletionChunk} */
  const out = {
    id: identity.id, object: 'chat.completion.chunk', created: identity.created, model,
    choices: delta ? [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] : [],
  };
  if (includeUsage) out.usage = usageValue;
  return out;
}
