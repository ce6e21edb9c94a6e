// app/engine/grammar.js (@mlc-ai/web-xgrammar) against model_prep/reference/grammar.py (Python xgrammar) through the oracle:
// the vocabulary read from tokenizer.json, each request's grammar spec (canonical JSON, sha256 key) and refusal
// message, and the token bitmask at every step of the same token sequences (valid answers and seeded random walks).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import {
  GrammarSpec, Grammars, PyFloat, canonicalJson, parsePyJson, pyFloatRepr, pyJson, pyRepr, vocabFromTokenizerJson,
} from '../../app/engine/grammar.js';
import { InputError } from '../../app/engine/errors.js';
import { fromRequest } from '../../app/engine/structured.js';
import { oracle, smollm2Package, tinyTokenizer } from './helpers/python.js';
import { readJson, vendor } from './helpers/vendor.js';

const SEED = 20261206;

/** Structured-output fields of ~20 requests: every kind of grammar, and every refusal structured.py words. */
const PARAMS = {
  type: 'object', properties: { tag: { type: 'string', maxLength: 12 }, psi: { type: 'integer', minimum: 0, maximum: 900 } },
  required: ['tag'], additionalProperties: false,
};
/** @param {string} name @param {any} [parameters] */
const tool = (name, parameters = PARAMS) => ({ type: 'function', function: { name, description: `${name} it`, parameters } });
export const REQUESTS = [
  {},
  { response_format: { type: 'text' } },
  { response_format: { type: 'json_object' } },
  { response_format: { type: 'json_schema', json_schema: { name: 'card', schema: PARAMS } } },
  { response_format: { type: 'json_schema', json_schema: { name: 'no schema' } } },
  {
    response_format: {
      type: 'json_schema', json_schema: {
        name: 'unicode', schema: {
          type: 'object', title: 'Température — ℃ 🌡', description: 'a "quoted"\n\tline\u0001 and \u2028',
          properties: { 'é': { const: 'ü' }, z: { enum: [1.5, 0.0001, 1e-7, 1e16, 123456789.25, -0, 7, true, null] },
            A: { type: 'array', items: { $ref: '#/$defs/x' }, maxItems: 2 }, '😀': { type: 'boolean' }, 'ｚ': { type: 'null' } },
          $defs: { x: { anyOf: [{ type: 'string', minLength: 1, maxLength: 3 }, { type: 'integer', exclusiveMinimum: -3 }] } },
        },
      },
    },
  },
  { tools: [tool('read_gauge')] },
  { tools: [tool('read_gauge'), tool('open_ticket', { type: 'object' })], tool_choice: 'required' },
  { tools: [tool('read_gauge'), tool('open_ticket')], tool_choice: { type: 'function', function: { name: 'open_ticket' } } },
  { tools: [tool('read_gauge'), tool('open_ticket')], tool_choice: 'auto', parallel_tool_calls: true },
  { tools: [{ type: 'function', function: { name: 'no_params' } }], tool_choice: 'required' },
  { tools: [tool('read_gauge')], tool_choice: 'none' },
  { tools: [tool('read_gauge')], tool_choice: 'none', response_format: { type: 'json_object' } },
  // refused, with structured.py's and grammar.py's messages
  { tools: [tool('read_gauge')], response_format: { type: 'json_object' } },
  { tool_choice: 'required' },
  { tools: [tool('read_gauge')], tool_choice: { type: 'function', function: { name: 'missing' } } },
  { tools: [tool('read_gauge')], tool_choice: 'sometimes' },
  { tools: [tool('read_gauge'), tool('read_gauge')] },
  { tools: [tool('bad name!')] },
  { tools: [{ type: 'function' }] },
  { response_format: { type: 'yaml' } },
  { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a+$' } } } },
  { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { oneOf: [{ type: 'string' }] } } } },
  { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'number', maximum: 1 } } } },
  { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { properties: [] } } } },
  { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { anyOf: { type: 'string' } } } } },
  { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { items: 3 } } } },
  { tools: [tool('t', { type: 'object', properties: { "it's": { type: 'string', format: 'date' } } })] },
];

/** The structure's grammar as the oracle writes it. @param {ReturnType<typeof fromRequest>} s */
async function specOf(s) {
  return s.grammar ? { kind: s.grammar.kind, body: s.grammar.body, key: await s.grammar.key() } : null;
}

describe('JSON as Python writes and reads it', () => {
  test('floats as repr(), integers exact, Python escapes and key order', () => {
    const cases = /** @type {[number, string][]} */ ([[1.5, '1.5'], [0.0001, '0.0001'], [1e-5, '1e-05'], [1e16, '1e+16'],
      [1e15, '1000000000000000.0'], [123456789.25, '123456789.25'], [-0, '-0.0'], [2.5e-300, '2.5e-300'],
      [1.7976931348623157e308, '1.7976931348623157e+308'], [0.1 + 0.2, '0.30000000000000004'], [100, '100.0']]);
    for (const [x, repr] of cases) assert.equal(pyFloatRepr(x), repr, String(x));
    assert.equal(pyJson({ b: [1, 2.5, null, true], a: 'é\u007f"<' }, { sortKeys: true }),
      '{"a": "\\u00e9\\u007f\\"<", "b": [1, 2.5, null, true]}');
    assert.equal(canonicalJson({ b: 1, a: { d: [], c: 'é' } }), '{"b":1,"a":{"d":[],"c":"é"}}');
    // Python's json.loads keeps key order (a repeated key: first place, last value) and 1.0 as a float
    const parsed = parsePyJson('{"b": 1.0, "10": 2, "a": [1e2, -0, NaN], "b": 3}');
    assert.equal(pyJson(parsed), '{"b": 3, "10": 2, "a": [100.0, 0, NaN]}');
    assert.ok(parsePyJson('2.0') instanceof PyFloat);
    for (const bad of ['{"a": 1,}', '[1 2]', '"a\nb"', '{} x', '01']) assert.throws(() => parsePyJson(bad), SyntaxError, bad);
    assert.equal(pyRepr("it's"), '"it\'s"');
    assert.equal(pyRepr('a\nb'), "'a\\nb'");
    assert.equal(pyRepr(null), 'None');
  });
});

describe('grammar specs', () => {
  test('the same spec, key and refusal as structured.py for ~30 requests', async () => {
    const { results } = await oracle('specs', { requests: REQUESTS });
    let refused = 0;
    for (const [i, request] of REQUESTS.entries()) {
      const where = `request ${i}: ${JSON.stringify(request).slice(0, 120)}`;
      if ('error' in results[i]) {
        assert.throws(() => fromRequest(request), (e) => e instanceof InputError && e.message === results[i].error, where);
        refused += 1;
        continue;
      }
      const s = fromRequest(request);
      assert.deepEqual(await specOf(s), results[i].grammar, where);
      assert.equal(s.callsTools, results[i].calls_tools, where);
      assert.deepEqual(s.tools, results[i].tools, where);
    }
    assert.equal(refused, 15);
  });

  test('the same spec and key for the 50 random schemas and tool sets of the property tests', async () => {
    const { cases } = await oracle('random-cases', { seed: SEED, n: 50 });
    const requests = cases.map((/** @type {any} */ c) => (c.schema
      ? { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: c.schema } } }
      : { tools: c.tools, tool_choice: c.tool_choice }));
    const { results } = await oracle('specs', { requests });
    assert.equal(results.length, 50);
    for (const [i, request] of requests.entries()) {
      assert.deepEqual(await specOf(fromRequest(request)), results[i].grammar, `case ${i}`);
    }
  });

  test('GrammarSpec.toJSON is grammar.py to_json', () => {
    const spec = GrammarSpec.jsonSchema({ type: 'object' });
    assert.deepEqual(spec.toJSON(), { kind: 'json_schema', schema: { type: 'object' } });
  });
});

describe('vocabulary', () => {
  test('read from tokenizer.json as vocab_from_tokenizer_json reads it (SmolLM2, tiny BPE, a Metaspace one)', async () => {
    const pkg = await smollm2Package();
    const tiny = await tinyTokenizer();
    const smol = readJson(join(pkg, 'tokenizer.json'));
    const vocabSize = readJson(join(pkg, 'manifest.json')).config.vocab_size;
    for (const [path, json, size] of /** @type {[string, any, number][]} */ ([
      [join(pkg, 'tokenizer.json'), smol, vocabSize], [tiny.path, readJson(tiny.path), 300]])) {
      const py = await oracle('vocab', { tokenizer: path, vocab_size: size });
      const js = vocabFromTokenizerJson(json, size);
      assert.equal(js.vocabType, py.vocab_type);
      assert.equal(js.addPrefixSpace, py.add_prefix_space);
      assert.equal(js.tokens.length, py.tokens.length);
      assert.deepEqual(js.tokens, py.tokens);
    }
    // sentencepiece-style: byte fallback, Metaspace in a Sequence pre-tokenizer (prepend), or "never"
    const sp = {
      model: { vocab: { '<unk>': 0, '▁a': 1, '<0x0A>': 2 } }, added_tokens: [{ id: 3, content: '</s>' }],
      decoder: { type: 'Sequence', decoders: [{ type: 'Replace' }, { type: 'ByteFallback' }] },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Metaspace', replacement: '▁' }] },
    };
    assert.deepEqual(vocabFromTokenizerJson(sp, 6),
      { tokens: ['<unk>', '▁a', '<0x0A>', '</s>', '', ''], vocabType: 'byte_fallback', addPrefixSpace: true });
    const never = { ...sp, pre_tokenizer: { type: 'Metaspace', prepend_scheme: 'never' } };
    assert.equal(vocabFromTokenizerJson(never, 4).addPrefixSpace, false);
  });
});

describe('bitmasks', () => {
  /** @type {Grammars} */
  let grammars;
  /** @type {string} */
  let tokenizerPath;
  /** @type {any} */
  let manifest;
  /** @type {import('../../app/engine/tokenizer.js').TextTokenizer} */
  let tokenizer;
  before(async () => {
    const pkg = await smollm2Package();
    tokenizerPath = join(pkg, 'tokenizer.json');
    manifest = readJson(join(pkg, 'manifest.json'));
    const json = readJson(tokenizerPath);
    const { TextTokenizer } = await import('../../app/engine/tokenizer.js');
    tokenizer = new TextTokenizer(vendor.Tokenizer, json);
    const xg = await /** @type {NonNullable<typeof vendor.loadXgrammar>} */ (vendor.loadXgrammar)();
    grammars = await Grammars.create(xg, vocabFromTokenizerJson(json, manifest.config.vocab_size),
      manifest.generation.eos_token_ids);
  });

  test('web-xgrammar and Python xgrammar allow the same tokens at every step, and finish together', async () => {
    const card = REQUESTS[3];
    const unicode = REQUESTS[5];
    /** @type {{request: any, text?: string, seed?: number}[]} */
    const drives = [
      { request: card, text: '{"tag": "P-3 high", "psi": 435}' },
      { request: card, seed: 1 },
      { request: REQUESTS[2], text: '{"a": [1, 2.5, {"b": null}], "c": "d\\u00e9"}' },
      { request: REQUESTS[2], seed: 2 },
      { request: unicode, seed: 3 },
      { request: REQUESTS[7], text: '<tool_call>\n{"name": "open_ticket", "arguments": {"x": 1}}\n</tool_call>' },
      { request: REQUESTS[7], seed: 4 },
      { request: REQUESTS[6], text: 'I will read it. <tool_call>\n{"name": "read_gauge", "arguments": {"tag": "P-3"}}\n</tool_call>' },
      { request: REQUESTS[9], seed: 5 },
    ];
    const cases = [];
    const specs = [];
    for (const d of drives) {
      const spec = /** @type {GrammarSpec} */ (fromRequest(d.request).grammar);
      specs.push(spec);
      cases.push(d.text !== undefined
        ? { kind: spec.kind, body: spec.body, tokens: tokenizer.encode(d.text) }
        : { kind: spec.kind, body: spec.body, seed: d.seed, steps: 60 });
    }
    const { results } = await oracle('masks', {
      tokenizer: tokenizerPath, vocab_size: manifest.config.vocab_size, stop_ids: manifest.generation.eos_token_ids, cases,
    });
    let steps = 0;
    for (const [i, r] of results.entries()) {
      const c = await grammars.constraint(specs[i]);
      assert.ok(r.tokens.length > 5, `case ${i} drove only ${r.tokens.length} tokens`);
      for (const [step, token] of r.tokens.entries()) {
        const mask = await c.bitmask();
        const hex = Buffer.from(mask.buffer, mask.byteOffset, mask.byteLength).toString('hex');
        assert.equal(hex, r.masks[step], `case ${i}, step ${step}`);
        c.accept(token);
        assert.equal(await c.finished(), r.finished[step], `case ${i}, finished after step ${step}`);
        steps += 1;
      }
      c.dispose();
    }
    assert.ok(results.filter((/** @type {any} */ r) => r.finished.at(-1)).length >= 4, 'valid answers end finished');
    assert.ok(steps > 150, `${steps} steps compared`);
  });

  test('a schema xgrammar cannot compile is an InputError, and the compiler keeps working', async () => {
    await assert.rejects(grammars.compile(GrammarSpec.jsonSchema({ type: 'foo' })),
      (e) => e instanceof InputError && /cannot be turned into a grammar: .*foo/.test(e.message));
    await assert.rejects(grammars.compile(GrammarSpec.jsonSchema({ $ref: '#/$defs/missing' })), InputError);
    const c = await grammars.constraint(GrammarSpec.jsonSchema({ type: 'boolean' }));
    assert.ok((await c.bitmask()).some((w) => w !== 0));
  });

  test('compiled grammars are kept (the last 32), and one compile serves concurrent requests', async () => {
    const spec = GrammarSpec.jsonSchema({ type: 'object', properties: { n: { type: 'integer' } } });
    const [a, b] = await Promise.all([grammars.compile(spec), grammars.compile(spec)]);
    assert.equal(a, b);
    assert.equal(await grammars.compile(GrammarSpec.jsonSchema(JSON.parse(JSON.stringify(spec.toJSON().schema)))), a);
    for (let i = 0; i < 40; i++) await grammars.compile(GrammarSpec.jsonSchema({ const: i }));
    assert.equal(grammars.cache.size, 32);
    assert.notEqual(await grammars.compile(spec), a, 'evicted, compiled again');
  });
});
