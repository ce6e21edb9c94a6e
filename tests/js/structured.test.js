// app/engine/structured.js and chat-template.js's tools against model_prep (structured.py, chat_template.py) through
// the oracle: tool calls split out of text, CallStream over streamed pieces, earlier calls and results written back
// into the conversation, tools in the prompt (generic block, or the template's own with Jinja2's tojson), and the
// check a finished answer must pass.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { ChatTemplate } from '../../app/engine/chat-template.js';
import { EngineError } from '../../app/engine/errors.js';
import { CallStream, checkAnswer, fromRequest, historyMessages, splitToolCalls } from '../../app/engine/structured.js';
import { oracle, smollm2Package } from './helpers/python.js';
import { readJson, vendor } from './helpers/vendor.js';

const CALL = '<tool_call>\n{"name": "read_gauge", "arguments": {"tag": "P-3", "psi": 435, "unit": "é", "x": 1.0}}\n</tool_call>';
const TEXTS = [
  'no calls here',
  CALL,
  `  Reading it now.\n${CALL}\n${CALL.replace('P-3', 'P-4')}  `,
  '<tool_call>{"name": "a", "arguments": {"b": [1e2, -0, 2.50], "10": "x", "a": {}}}</tool_call> after',
  '<tool_call>\n{"name": "broken", "arguments": {</tool_call> stays',
  '<tool_call>{"arguments": {}}</tool_call> no name',
  '<tool_call>\u00a0{"name": "nbsp"}\u0085</tool_call>',
  'half <tool_ca',
];
/** @param {string} text @param {number} size */
const pieces = (text, size) => Array.from({ length: Math.ceil(text.length / size) }, (_, i) => text.slice(i * size, (i + 1) * size));

/** @param {any} part */
const plain = (part) => (typeof part === 'string' ? part : { type: part.type, function: part.function });

describe('tool calls in text', () => {
  test('split, streamed and written back as structured.py does', async () => {
    const streams = [...TEXTS.map((t) => pieces(t, 3)), ...TEXTS.map((t) => pieces(t, 1)), [CALL, '\n\ntail']];
    const histories = [[
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'read P-3' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'read_gauge', arguments: '{"tag": "P-3", "x": 1.0, "10": "é"}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: '{"psi": 435}' },
      { role: 'assistant', content: 'two:', tool_calls: [
        { id: 'c2', type: 'function', function: { name: 'a', arguments: 'not json' } },
        { id: 'c3', type: 'function', function: { name: 'b', arguments: '' } }] },
      { role: 'assistant', content: 'plain', tool_calls: [] },
    ]];
    const py = await oracle('calls', { texts: TEXTS, streams, histories });
    TEXTS.forEach((text, i) => {
      const { content, calls } = splitToolCalls(text);
      assert.deepEqual({ content, calls: calls.map(plain) }, py.splits[i], `split ${i}`);
      for (const call of calls) assert.match(call.id, /^call_[0-9a-f]{24}$/);
    });
    streams.forEach((pushes, i) => {
      const s = new CallStream();
      const parts = [...pushes.flatMap((p) => s.push(p)), ...s.flush()];
      assert.deepEqual(parts.map(plain), py.streams[i], `stream ${i}`);
    });
    assert.deepEqual(historyMessages(histories[0]), py.histories[0]);
  });
});

describe('tools in the prompt', () => {
  const TOOLS = fromRequest({ tools: [{ type: 'function', function: {
    name: 'read_gauge', description: "Reads a gauge's <value> & unit: ℃",
    parameters: { type: 'object', properties: { tag: { type: 'string' }, b: { type: 'number' } }, required: ['tag'] },
  } }] }).tools;
  // a template that renders tools itself, as Qwen2.5's does (tool | tojson into the system turn)
  const NATIVE = `{%- if tools %}<|im_start|>system
# Tools
<tools>{% for tool in tools %}
{{ tool | tojson }}{% endfor %}
</tools><|im_end|>
{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}`;

  test('the generic block in the system message (SmolLM2) and the template\'s own rendering, as Python\'s', async () => {
    const manifest = readJson(join(await smollm2Package(), 'manifest.json'));
    const conversations = [
      [{ role: 'user', content: 'Read P-3.' }],
      [{ role: 'system', content: 'You help on a platform.' }, { role: 'user', content: 'Read P-3.' }],
    ];
    for (const [source, native] of [[manifest.chat_template, false], [NATIVE, true]]) {
      const template = new ChatTemplate(vendor.Template, source, { bosToken: '<s>', eosToken: '</s>' });
      for (const messages of conversations) {
        const py = await oracle('render-tools', { template: source, messages, tools: TOOLS, bos: '<s>', eos: '</s>' });
        assert.equal(py.native, native);
        assert.equal(template.render(messages, { tools: TOOLS }), py.text);
      }
    }
  });
});

describe('the finished answer check', () => {
  test('a complete answer that does not fit is withheld; one that fits passes', () => {
    const schema = {
      type: 'object', properties: { n: { type: 'integer', minimum: 1 }, s: { type: 'string', maxLength: 2 }, e: { enum: ['a', 1] },
        r: { $ref: '#/$defs/r' } }, required: ['n'], additionalProperties: false, $defs: { r: { type: 'array', maxItems: 1 } },
    };
    const structure = fromRequest({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
    for (const ok of ['{"n": 1}', '{"n": 2.0, "s": "😀é", "e": 1.0, "r": []}']) checkAnswer(ok, structure, []);
    for (const bad of ['{"n": 0}', '{"s": "a"}', '{"n": 1, "s": "abc"}', '{"n": 1, "x": 1}', '{"n": 1, "e": true}',
      '{"n": 1, "r": [1, 2]}', '{"n": 1', '[]', '{"n": 1.5}']) {
      assert.throws(() => checkAnswer(bad, structure, []), (e) => e instanceof EngineError &&
        /does not fit the requested schema \(.+\); it was withheld/.test(e.message), bad);
    }
    const tools = fromRequest({ tools: [{ type: 'function', function: { name: 'f', parameters: schema } }] });
    const calls = splitToolCalls('<tool_call>{"name": "f", "arguments": {"n": 3}}</tool_call>').calls;
    checkAnswer('', tools, calls);
    const wrong = splitToolCalls('<tool_call>{"name": "g", "arguments": {"n": 3}}</tool_call>').calls;
    assert.throws(() => checkAnswer('', tools, wrong), /a tool call does not fit its function \(it calls 'g'/);
    const misfit = splitToolCalls('<tool_call>{"name": "f", "arguments": {"n": -3}}</tool_call>').calls;
    assert.throws(() => checkAnswer('', tools, misfit), /a tool call does not fit its function/);
  });
});
