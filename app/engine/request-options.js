// request-options.js: an OpenAI chat.completions.create body -> the engine's options, with the package's generation
// defaults (manifest.generation) for what the request leaves out, and an InputError for what it gets wrong.
// The same request means the same thing here and in `fieldllm serve` (app/server/parse.py + schemas.py):
//   top_p 0 is greedy; "developer" is a system message; temperature in [0, 2]; max_completion_tokens wins over
//   max_tokens; stop: up to 4 strings, empty ones ignored; unknown parameters and the OpenAI features neither engine
//   has are refused by name (with the server's messages); response_format / tools / tool_choice /
//   parallel_tool_calls become a grammar (structured.js); earlier tool calls and tool results are written into the
//   conversation (structured.js historyMessages).
// Left different: the default max_tokens is manifest.generation.max_tokens (else 512) here and the server's
// --max-tokens (default 512) there, which is also the most it allows (this engine's limit is the context); a model
// field is optional here (there is one model); seeds must be safe integers here (the server takes 64 bits).

import { InputError } from './errors.js';
import { isPlainObject } from './grammar.js';
import { Sampler } from './sampler.js';
import { fromRequest, historyMessages } from './structured.js';

/** @typedef {import('./structured.js').Structure} Structure */
/** @typedef {import('./structured.js').Tool} Tool */

/**
 * @typedef {object} ChatRequest  the subset of OpenAI's request body the engine reads
 * @property {unknown} messages                     [{role, content}]
 * @property {string} [model]                       ignored (one model)
 * @property {boolean | null} [stream]
 * @property {{include_usage?: boolean | null} | null} [stream_options]
 * @property {number | null} [max_tokens]          completion tokens at most
 * @property {number | null} [max_completion_tokens] OpenAI's newer name for max_tokens (wins when both are given)
 * @property {number | null} [temperature]         [0, 2]; 0 = greedy
 * @property {number | null} [top_p]               nucleus mass in [0, 1]; 0 = greedy
 * @property {number | null} [seed]                integer; repeats a sampled completion exactly
 * @property {string | string[] | null} [stop]     up to 4 stop strings
 * @property {number | null} [n]                   only 1
 * @property {any} [response_format]               {type: text | json_object | json_schema, json_schema?}
 * @property {any} [tools]                         [{type: "function", function: {name, description?, parameters?}}]
 * @property {any} [tool_choice]                   "none" | "auto" | "required" | {type: "function", function: {name}}
 * @property {boolean | null} [parallel_tool_calls] more than one call per answer (default: one)
 * @property {number | null} [top_k]               0 = no limit
 * @property {number | null} [min_p]               [0, 1]
 * @property {number | null} [frequency_penalty]   [-2, 2]
 * @property {number | null} [presence_penalty]    [-2, 2]
 * @property {Record<string, number> | null} [logit_bias]  token id (as a string) -> [-100, 100]
 * @property {boolean | null} [logprobs]           report each token's log-probability
 * @property {number | null} [top_logprobs]        and this many alternatives, [0, 20] (needs logprobs)
 * @property {AbortSignal | null} [signal]         aborts between tokens (not part of OpenAI's body: its SDK takes it
 *                                                 as a request option; here it rides along)
 */

/**
 * @typedef {object} RequestOptions
 * @property {import('./chat-template.js').Message[]} messages  system/user/assistant turns, tool turns written out
 * @property {Structure} structure  the grammar (or null) and the tools to show the model
 * @property {boolean} stream
 * @property {boolean} includeUsage
 * @property {number} maxTokens
 * @property {Sampler} sampler
 * @property {string[]} stops
 * @property {boolean} logprobs
 * @property {AbortSignal | null} signal
 */

// parse.py UNSUPPORTED: parameter -> (is this value, when not null, asking for the feature?, what to say)
const LATER = 'is not supported by this server yet';
/** @type {Record<string, [(v: any) => boolean, string]>} */
const UNSUPPORTED = {
  functions: [(v) => !(Array.isArray(v) && v.length === 0), `functions ${LATER}; send tools`],
  function_call: [(v) => v !== 'none', `function_call ${LATER}; send tool_choice`],
  n: [(v) => v !== 1, 'n must be 1: this server gives one answer per request'],
  audio: [() => true, `audio ${LATER}`],
  modalities: [(v) => !Array.isArray(v) || v.some((m) => m !== 'text'), 'only the text modality is supported'],
  prediction: [() => true, `prediction ${LATER}`],
  reasoning_effort: [() => true, `reasoning_effort ${LATER}`],
  verbosity: [() => true, `verbosity ${LATER}`],
  web_search_options: [() => true, 'web search is not available (this server works offline)'],
};
/** Parameters taken as they are (bookkeeping with no effect on the answer), besides the ones read below. */
const IGNORED = ['model', 'user', 'metadata', 'store', 'service_tier', 'safety_identifier', 'prompt_cache_key', 'signal'];
const KNOWN = new Set([...IGNORED, ...Object.keys(UNSUPPORTED), 'messages', 'stream', 'stream_options', 'max_tokens',
  'max_completion_tokens', 'temperature', 'top_p', 'seed', 'stop', 'response_format', 'tools', 'tool_choice',
  'parallel_tool_calls', 'top_k', 'min_p', 'frequency_penalty', 'presence_penalty', 'logit_bias', 'logprobs',
  'top_logprobs']);
const ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

/**
 * A number in [lo, hi] (or null/undefined), else an InputError naming the parameter.
 * @param {Record<string, any>} request @param {string} name @param {number} lo @param {number} hi
 * @param {boolean} [integer]
 * @returns {number | null}
 */
function numberIn(request, name, lo, hi, integer = false) {
  const v = request[name];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < lo || v > hi) {
    throw new InputError(`${name} must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
  }
  return v;
}

/** @param {Record<string, any>} request @param {string} name @returns {boolean | null} */
function boolOrNull(request, name) {
  const v = request[name];
  if (v === null || v === undefined) return null;
  if (typeof v !== 'boolean') throw new InputError(`${name} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * OpenAI's message shapes -> {role, content, tool_calls} with text content (parts joined) and "developer" as
 * "system"; history_messages then writes tool calls and results as text. Roles and content are checked by the chat
 * template (checkMessages) afterwards, as Python's render does.
 * @param {unknown} messages
 */
function conversation(messages) {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new InputError('messages must be a non-empty list of {role, content} objects');
  }
  return historyMessages(messages.map((m, i) => {
    if (!isPlainObject(m) || !ROLES.includes(/** @type {string} */ (m.role))) {
      throw new InputError(`message ${i} must be {'role': one of ${ROLES.join(', ')}, 'content': a string}`);
    }
    let content = m.content ?? '';
    if (Array.isArray(content) && content.length && content.every((p) => isPlainObject(p) && p.type === 'text' &&
      typeof p.text === 'string')) {
      content = content.map((p) => p.text).join('');
    }
    const calls = m.tool_calls ?? null;
    if (calls !== null && !(Array.isArray(calls) && calls.every((c) => isPlainObject(c) && c.type === 'function' &&
      isPlainObject(c.function) && typeof c.function.name === 'string' && typeof c.function.arguments === 'string'))) {
      throw new InputError(`messages.${i}.tool_calls must be [{id, type: 'function', function: {name, arguments}}]`);
    }
    return { role: m.role === 'developer' ? 'system' : m.role, content, tool_calls: calls };
  }));
}

/**
 * Tools as the server's types keep them (only their known fields, nulls dropped), or an InputError.
 * @param {unknown} tools
 * @returns {Tool[] | null}
 */
function toolList(tools) {
  if (tools === null || tools === undefined) return null;
  if (!Array.isArray(tools) || tools.length > 128) throw new InputError('tools must be a list of at most 128 tools');
  return tools.map((tool, i) => {
    if (!isPlainObject(tool)) return tool; // structured.js says what a tool must be
    for (const key of Object.keys(tool)) {
      if (!['type', 'function'].includes(key)) throw new InputError(`unknown parameter tools.${i}.${key}`);
    }
    const fn = tool.function;
    if (!isPlainObject(fn)) return tool;
    /** @type {Record<string, any>} */
    const kept = {};
    for (const [key, value] of Object.entries(fn)) {
      if (!['name', 'description', 'parameters', 'strict'].includes(key)) {
        throw new InputError(`unknown parameter tools.${i}.function.${key}`);
      }
      if (value !== null && value !== undefined) kept[key] = value;
    }
    if (kept.description !== undefined && typeof kept.description !== 'string') {
      throw new InputError(`tools.${i}.function.description must be a string`);
    }
    if (kept.parameters !== undefined && !isPlainObject(kept.parameters)) {
      throw new InputError(`tools.${i}.function.parameters must be a JSON Schema object`);
    }
    return { type: tool.type, function: kept };
  });
}

/** @param {unknown} format */
function checkResponseFormat(format) {
  if (format === null || format === undefined) return;
  if (!isPlainObject(format) || !['text', 'json_object', 'json_schema'].includes(/** @type {string} */ (format.type))) {
    throw new InputError("response_format must be {'type': 'text'}, {'type': 'json_object'} or " +
      "{'type': 'json_schema', 'json_schema': {'name': ..., 'schema': ...}}");
  }
  if (format.type !== 'json_schema') return;
  const spec = format.json_schema;
  if (!isPlainObject(spec) || typeof spec.name !== 'string' || spec.name.length < 1 || spec.name.length > 64) {
    throw new InputError('response_format.json_schema must have a name of 1-64 characters');
  }
  if (spec.schema !== null && spec.schema !== undefined && !isPlainObject(spec.schema)) {
    throw new InputError('response_format.json_schema.schema must be a JSON Schema object');
  }
}

// parse.py MAX_DEPTH: bodies that nest arrays and objects deeper are refused before anything walks them (the server's
// JSON parser, templates and schema checks recurse); the same limit here, so that both engines take the same requests
export const MAX_DEPTH = 64;

/** Levels of nested arrays and plain objects in a value (0 for a scalar), counted with a loop, not recursion.
 * @param {unknown} value */
export function depth(value) {
  let deepest = 0;
  /** @type {[unknown, number][]} */
  const stack = [[value, 1]];
  while (stack.length > 0) {
    const [item, d] = /** @type {[unknown, number]} */ (stack.pop());
    const children = Array.isArray(item) ? item : isPlainObject(item) ? Object.values(/** @type {object} */ (item)) : null;
    if (children === null) continue;
    deepest = Math.max(deepest, d);
    for (const child of children) if (typeof child === 'object' && child !== null) stack.push([child, d + 1]);
  }
  return deepest;
}

/**
 * @param {ChatRequest} request
 * @param {Record<string, any>} generation  manifest.generation: temperature, top_p, max_tokens defaults
 * @returns {RequestOptions}
 */
export function parseRequest(request, generation = {}) {
  if (!isPlainObject(request)) throw new InputError('the request must be an object with messages');
  const body = /** @type {Record<string, any>} */ (request);
  if (depth(Object.fromEntries(Object.entries(body).filter(([name]) => name !== 'signal'))) > MAX_DEPTH) {
    throw new InputError(`the body nests arrays and objects more than ${MAX_DEPTH} levels deep; this server accepts ` +
      'at most that');
  }
  for (const [name, [inUse, message]] of Object.entries(UNSUPPORTED)) {
    if (body[name] !== null && body[name] !== undefined && inUse(body[name])) throw new InputError(message);
  }
  for (const name of Object.keys(body)) if (!KNOWN.has(name)) throw new InputError(`unknown parameter ${name}`);
  const messages = conversation(body.messages);

  const asked = numberIn(body, 'max_completion_tokens', 1, 2 ** 31 - 1, true) ??
    numberIn(body, 'max_tokens', 1, 2 ** 31 - 1, true);
  const maxTokens = asked ?? generation.max_tokens ?? 512;
  let temperature = numberIn(body, 'temperature', 0, 2);
  let topP = numberIn(body, 'top_p', 0, 1);
  if (topP === 0) { // OpenAI accepts 0: only the most likely token survives, which is greedy decoding
    temperature = 0;
    topP = null;
  }
  const seed = body.seed ?? null;
  if (seed !== null && !Number.isSafeInteger(seed)) throw new InputError(`seed must be an integer, got ${JSON.stringify(seed)}`);
  const logprobs = boolOrNull(body, 'logprobs') ?? false;
  const topLogprobs = numberIn(body, 'top_logprobs', 0, 20, true) ?? 0;
  if (topLogprobs && !logprobs) throw new InputError('top_logprobs needs logprobs: true');
  const bias = body.logit_bias ?? {};
  if (!isPlainObject(bias) || Object.keys(bias).length > 1024) {
    throw new InputError('logit_bias must map at most 1024 token ids to numbers in [-100, 100]');
  }
  /** @type {Map<number, number>} */
  const logitBias = new Map();
  for (const [key, value] of Object.entries(bias)) {
    if (!/^[0-9]{1,9}$/.test(key)) throw new InputError(`logit_bias keys must be token ids, got '${key}'`);
    if (typeof value !== 'number' || !(value >= -100 && value <= 100)) {
      throw new InputError(`logit_bias values must be numbers in [-100, 100], got ${JSON.stringify(value)} for ${key}`);
    }
    logitBias.set(Number(key), value);
  }
  const sampler = new Sampler({
    temperature: temperature ?? generation.temperature ?? 0,
    topP: topP ?? generation.top_p ?? 1,
    seed,
    topK: numberIn(body, 'top_k', 0, 2 ** 20, true) ?? 0,
    minP: numberIn(body, 'min_p', 0, 1) ?? 0,
    frequencyPenalty: numberIn(body, 'frequency_penalty', -2, 2) ?? 0,
    presencePenalty: numberIn(body, 'presence_penalty', -2, 2) ?? 0,
    logitBias,
    topLogprobs,
  });

  const stop = body.stop ?? [];
  const stops = typeof stop === 'string' ? [stop] : stop;
  if (!Array.isArray(stops) || stops.length > 4 || !stops.every((s) => typeof s === 'string')) {
    throw new InputError('stop must be a string or a list of at most 4 strings');
  }
  checkResponseFormat(body.response_format);
  const choice = body.tool_choice ?? null;
  if (!(choice === null || ['none', 'auto', 'required'].includes(choice) || (isPlainObject(choice) &&
    choice.type === 'function' && isPlainObject(choice.function) && typeof choice.function.name === 'string'))) {
    throw new InputError("tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'function': " +
      "{'name': ...}}");
  }
  const structure = fromRequest({
    response_format: body.response_format, tools: toolList(body.tools), tool_choice: choice,
    parallel_tool_calls: boolOrNull(body, 'parallel_tool_calls'),
  });
  const signal = body.signal ?? null;
  if (signal !== null && !(typeof signal === 'object' && 'aborted' in signal)) {
    throw new InputError('signal must be an AbortSignal');
  }
  const stream = boolOrNull(body, 'stream') ?? false;
  return {
    messages: /** @type {import('./chat-template.js').Message[]} */ (messages), structure, stream,
    includeUsage: body.stream_options?.include_usage === true, maxTokens, sampler,
    stops: stops.filter((s) => s.length > 0), logprobs, signal,
  };
}
