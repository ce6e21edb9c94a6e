// One request, one treatment, whichever engine answers: the same request bodies through the browser engine's
// parseRequest (app/engine/request-options.js) and through fieldllm serve's parse_chat (app/server/parse.py, via the
// oracle, with the reference engine's defaults applied as Engine.stream applies them) give the same sampling
// settings, the same grammar (spec body and key), the same prompt text (template, tools, tool history), and the same
// refusals, word for word where the message is ours rather than pydantic's.
//
// Differences left (documented in request-options.js): the server refuses max_tokens above its --max-tokens (512 by
// default) while the browser engine is bounded by its context only; the default max_tokens is the server's
// --max-tokens there and manifest.generation.max_tokens here (both 512 for the default model); negative seeds are
// taken modulo 2^64 by the server (numpy) and as they are here; the server requires `model`.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { ChatTemplate } from '../../app/engine/chat-template.js';
import { parseRequest } from '../../app/engine/request-options.js';
import { oracle, smollm2Package } from './helpers/python.js';
import { readJson, vendor } from './helpers/vendor.js';

const USER = { role: 'user', content: 'Mud pump P-3 pressure drifting high since 0200. What now?' };
const SCHEMA = {
  type: 'object', properties: { cause: { type: 'string', maxLength: 40 }, priority: { enum: ['low', 'high'] } },
  required: ['cause', 'priority'], additionalProperties: false,
};
const TOOLS = [
  { type: 'function', function: { name: 'read_gauge', description: 'Reads a gauge', parameters: { type: 'object', properties: { tag: { type: 'string' } }, required: ['tag'] } } },
  { type: 'function', function: { name: 'open_ticket', description: null, parameters: null } },
];
const HISTORY = [
  { role: 'developer', content: 'You help on a drilling platform.' },
  USER,
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'read_gauge', arguments: '{"tag": "P-3"}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '{"psi": 435}' },
];

/** [body fields (besides model and messages), whether a refusal's message must be word for word the server's] */
const BODIES = /** @type {[Record<string, any>, boolean?][]} */ ([
  [{}],
  [{ messages: [{ role: 'developer', content: 'Be brief.' }, USER] }],
  [{ messages: [{ role: 'user', content: [{ type: 'text', text: 'Pump ' }, { type: 'text', text: 'P-3?' }] }] }],
  [{ temperature: 0.7, top_p: 0 }],
  [{ temperature: 2, top_p: 0.9, seed: 42 }],
  [{ temperature: 0.5, top_k: 40, min_p: 0.05, frequency_penalty: 0.5, presence_penalty: -0.25 }],
  [{ max_tokens: 100 }],
  [{ max_tokens: 100, max_completion_tokens: 50 }],
  [{ stop: 'END' }],
  [{ stop: ['a', '', 'b'] }],
  [{ logprobs: true, top_logprobs: 5 }],
  [{ logit_bias: { 15: 10, 200: -100 } }],
  [{ stream: true, stream_options: { include_usage: true } }],
  [{ response_format: { type: 'json_object' } }],
  [{ response_format: { type: 'json_schema', json_schema: { name: 'card', schema: SCHEMA, strict: true } } }],
  [{ tools: TOOLS }],
  [{ tools: TOOLS, tool_choice: 'required', parallel_tool_calls: true }],
  [{ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'read_gauge' } } }],
  [{ tools: TOOLS, tool_choice: 'none' }],
  [{ tools: TOOLS, messages: HISTORY }],
  // refused on both sides
  [{ temperature: 2.5 }],
  [{ top_p: 1.5 }],
  [{ max_tokens: 0 }],
  [{ stop: ['a', 'b', 'c', 'd', 'e'] }],
  [{ top_logprobs: 21, logprobs: true }],
  [{ frequency_penalty: 3 }],
  [{ min_p: 2 }],
  [{ logit_bias: { abc: 1 } }],
  [{ logit_bias: { 5: 200 } }],
  [{ messages: [{ role: 'robot', content: 'x' }] }],
  [{ messages: [] }],
  [{ top_logprobs: 3 }, true],
  [{ n: 2 }, true],
  [{ functions: [{ name: 'f' }] }, true],
  [{ web_search_options: {} }, true],
  [{ foo: 1 }, true],
  [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: 'a+' } } } }, true],
  [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'number', minimum: 0 } } } }, true],
  [{ tools: TOOLS, response_format: { type: 'json_object' } }, true],
  [{ tool_choice: 'required' }, true],
  [{ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }, true],
  [{ tools: [TOOLS[0], TOOLS[0]] }, true],
  [{ tools: [{ type: 'function', function: { name: 'f', parameters: { oneOf: [] } } }] }, true],
  [{ metadata: nested(64) }, true], // parse.py MAX_DEPTH: 65 levels with the body itself
]);

/** @param {number} levels  objects nested this deep */
function nested(levels) {
  /** @type {any} */
  let value = 'x';
  for (let i = 0; i < levels; i += 1) value = { a: value };
  return value;
}

/** The JS side's settings in the oracle's shape. @param {ReturnType<typeof parseRequest>} o */
async function settingsOf(o) {
  const s = o.sampler;
  const g = o.structure.grammar;
  return {
    max_tokens: o.maxTokens, temperature: s.temperature, top_p: s.topP, seed: s.seed, stop: o.stops,
    top_k: s.topK, min_p: s.minP, frequency_penalty: s.frequencyPenalty, presence_penalty: s.presencePenalty,
    logit_bias: Object.fromEntries([...s.logitBias].map(([k, v]) => [String(k), v])), logprobs: o.logprobs,
    top_logprobs: s.topLogprobs, stream: o.stream, include_usage: o.includeUsage,
    grammar: g ? { kind: g.kind, body: g.body, key: await g.key() } : null, calls_tools: o.structure.callsTools,
  };
}

test('the same bodies give the same settings, grammar, prompt and refusals as fieldllm serve', async () => {
  const pkg = await smollm2Package();
  const manifest = readJson(join(pkg, 'manifest.json'));
  const generation = manifest.generation;
  const bodies = BODIES.map(([fields]) => ({ model: 'smollm2', messages: [USER], ...fields }));
  const { results } = await oracle('parse-chat', {
    bodies, limit: 512, generation, template: manifest.chat_template, bos: '<|im_start|>', eos: '<|im_end|>',
  });
  const template = new ChatTemplate(vendor.Template, manifest.chat_template, { bosToken: '<|im_start|>', eosToken: '<|im_end|>' });
  let refused = 0;
  for (const [i, body] of bodies.entries()) {
    const where = `body ${i}: ${JSON.stringify(BODIES[i][0]).slice(0, 150)}`;
    const py = results[i];
    /** @type {ReturnType<typeof parseRequest> | null} */
    let js = null;
    /** @type {Error | null} */
    let error = null;
    try {
      js = parseRequest(body, generation);
      template.render(js.messages, { tools: js.structure.tools }); // the server renders before answering too
    } catch (e) {
      error = /** @type {Error} */ (e);
    }
    if (py.error) {
      assert.ok(error, `${where}: the server refuses it (${py.error.message}), the browser engine does not`);
      assert.equal(error.name, 'InputError', where);
      if (BODIES[i][1]) assert.equal(error.message, py.error.message, where);
      refused += 1;
      continue;
    }
    assert.equal(error, null, `${where}: the browser engine refuses it (${error?.message}), the server does not`);
    const o = /** @type {ReturnType<typeof parseRequest>} */ (js);
    const mine = await settingsOf(o);
    assert.deepEqual(mine, py.settings, where);
    assert.equal(template.render(o.messages, { tools: o.structure.tools }), py.prompt, `${where}: prompt`);
  }
  assert.equal(refused, 24);
});
