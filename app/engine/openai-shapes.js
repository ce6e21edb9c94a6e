// openai-shapes.js: the objects OpenAI's chat completions API returns, built in one place, as fieldllm serve writes
// them (app/server/schemas.py): message.tool_calls only when there are calls, logprobs {content: [...], refusal},
// llama.cpp's `timings` beside usage, each streamed tool call whole in one delta.
// https://platform.openai.com/docs/api-reference/chat/object and .../chat-streaming

/** @typedef {'stop' | 'length' | 'tool_calls'} FinishReason */
/** @typedef {{prompt_tokens: number, completion_tokens: number, total_tokens: number}} Usage */
/** @typedef {import('./structured.js').ToolCall} ToolCall */
/**
 * @typedef {object} Timings  where one completion's time went (milliseconds), as llama.cpp's server reports them
 * @property {number} prompt_n             prompt tokens actually run (the rest came from the KV cache)
 * @property {number} prompt_ms
 * @property {number} prompt_per_second
 * @property {number} predicted_n
 * @property {number} predicted_ms         from the first new token to the end
 * @property {number} predicted_per_second
 */
/** @typedef {{token: string, logprob: number, bytes: number[] | null}} TopLogprob */
/** @typedef {TopLogprob & {top_logprobs: TopLogprob[]}} TokenLogprob */
/** @typedef {{content: TokenLogprob[] | null, refusal: null}} ChoiceLogprobs */
/**
 * @typedef {{index: number, id: string, type: 'function', function: {name: string, arguments: string}}} ToolCallDelta
 */
/**
 * @typedef {{role: 'assistant', content: string | null, tool_calls?: ToolCall[]}} AssistantMessage
 */
/**
 * @typedef {object} ChatCompletion
 * @property {string} id
 * @property {'chat.completion'} object
 * @property {number} created  Unix seconds
 * @property {string} model
 * @property {{index: number, message: AssistantMessage, logprobs: ChoiceLogprobs | null,
 *             finish_reason: FinishReason}[]} choices
 * @property {Usage} usage
 * @property {Timings} [timings]
 */
/** @typedef {{role?: 'assistant', content?: string, tool_calls?: ToolCallDelta[]}} Delta */
/**
 * @typedef {object} ChatCompletionChunk
 * @property {string} id  the same for every chunk of one completion
 * @property {'chat.completion.chunk'} object
 * @property {number} created
 * @property {string} model
 * @property {{index: number, delta: Delta, logprobs: ChoiceLogprobs | null,
 *             finish_reason: FinishReason | null}[]} choices  empty in the usage chunk
 * @property {Usage | null} [usage]  present (null until the last chunk) when stream_options.include_usage
 * @property {Timings} [timings]     on the chunk with the finish reason
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
 * Timings from milliseconds and counts (model_prep/reference/engine.py Timings.to_json: 3 decimals, rates per second).
 * @param {number} promptMs @param {number} promptN @param {number} predictedMs @param {number} predictedN
 * @returns {Timings}
 */
export function timings(promptMs, promptN, predictedMs, predictedN) {
  const round = (/** @type {number} */ x) => Math.round(x * 1000) / 1000;
  const rate = (/** @type {number} */ n, /** @type {number} */ ms) => (ms > 0 ? round((1000 * n) / ms) : 0);
  return {
    prompt_n: promptN, prompt_ms: round(promptMs), prompt_per_second: rate(promptN, promptMs),
    predicted_n: predictedN, predicted_ms: round(predictedMs), predicted_per_second: rate(predictedN, predictedMs),
  };
}

/**
 * @param {{id: string, created: number}} identity
 * @param {string} model
 * @param {{content: string | null, toolCalls?: ToolCall[] | null, finish: FinishReason, usage: Usage,
 *          logprobs?: ChoiceLogprobs | null, timings?: Timings | null}} answer
 * @returns {ChatCompletion}
 */
export function completion(identity, model, answer) {
  /** @type {AssistantMessage} */
  const message = { role: 'assistant', content: answer.content };
  if (answer.toolCalls && answer.toolCalls.length) message.tool_calls = answer.toolCalls;
  /** @type {ChatCompletion} */
  const out = {
    id: identity.id, object: 'chat.completion', created: identity.created, model,
    choices: [{ index: 0, message, logprobs: answer.logprobs ?? null, finish_reason: answer.finish }],
    usage: answer.usage,
  };
  if (answer.timings) out.timings = answer.timings;
  return out;
}

/**
 * One chunk with a delta (or, with `delta` null, the usage chunk: no choices).
 * @param {{id: string, created: number}} identity
 * @param {string} model
 * @param {Delta | null} delta
 * @param {FinishReason | null} finishReason
 * @param {boolean} includeUsage  add the usage field (null unless given)
 * @param {Usage | null} [usageValue]
 * @param {{logprobs?: ChoiceLogprobs | null, timings?: Timings | null}} [extra]
 * @returns {ChatCompletionChunk}
 */
export function chunk(identity, model, delta, finishReason, includeUsage, usageValue = null, extra = {}) {
  /** @type {ChatCompletionChunk} */
  const out = {
    id: identity.id, object: 'chat.completion.chunk', created: identity.created, model,
    choices: delta ? [{ index: 0, delta, logprobs: extra.logprobs ?? null, finish_reason: finishReason }] : [],
  };
  if (includeUsage) out.usage = usageValue;
  if (extra.timings) out.timings = extra.timings;
  return out;
}
