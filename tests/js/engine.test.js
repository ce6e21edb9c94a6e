// app/engine/engine.js over a fake model (helpers/fake-model.js) and the real SmolLM2 tokenizer and template:
// OpenAI shapes, streaming order, finish reasons, stop strings, KV cache reuse across turns, context overflow,
// cancellation, one request at a time, sampling, bad requests, and Engine.create's loading path.

import assert from 'node:assert/strict';
import { copyFileSync, cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { before, describe, test } from 'node:test';

import { Engine } from '../../app/engine/engine.js';
import {
  ContextOverflowError, DeviceLostError, InputError, IntegrityError, WebGPUUnavailableError,
} from '../../app/engine/errors.js';
import { FakeModel } from './helpers/fake-model.js';
import { fileFetch } from './helpers/file-fetch.js';
import { scratchDir, smollm2Package } from './helpers/python.js';
import { readPackage, vendor } from './helpers/vendor.js';

const REPLY = 'Check the suction strainer first: a blocked strainer starves the pump. Then check the seal.';
const USER = { role: 'user', content: 'Pump P-204 discharge pressure dropped. What do I check?' };

/** @type {{manifest: any, tokenizerJson: any}} */
let pkg;
/** @type {string} */
let pkgDir;

before(async () => {
  pkgDir = await smollm2Package();
  pkg = readPackage(pkgDir);
});

/**
 * An engine over a FakeModel that answers REPLY (or `reply`).
 * @param {{reply?: string, context?: number, onForward?: (call: import('./helpers/fake-model.js').ForwardCall) => any}} [opts]
 */
function makeEngine({ reply = REPLY, context = 512, onForward } = {}) {
  const probe = Engine.fromParts({ model: /** @type {any} */ ({ manifest: pkg.manifest, context }), vendor, tokenizerJson: pkg.tokenizerJson });
  const marker = probe.tokenizer.encode('<|im_start|>assistant\n');
  const model = new FakeModel({ manifest: pkg.manifest, marker, reply: probe.tokenizer.encode(reply), context, onForward });
  const engine = Engine.fromParts({ model, vendor, tokenizerJson: pkg.tokenizerJson });
  return { engine, model };
}

/** @param {AsyncIterable<any>} stream */
async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

describe('chat.completions.create', () => {
  test('returns an OpenAI ChatCompletion; EOS ends it with "stop"', async () => {
    const { engine } = makeEngine();
    const out = await engine.chat.completions.create({ messages: [USER] });
    const promptTokens = engine.promptIds([USER]).length;
    const replyTokens = engine.tokenizer.encode(REPLY).length;
    assert.match(out.id, /^chatcmpl-[0-9a-f]{24}$/);
    assert.equal(out.object, 'chat.completion');
    assert.ok(Number.isInteger(out.created) && Math.abs(out.created - Date.now() / 1000) < 5);
    assert.equal(out.model, pkg.manifest.name);
    assert.deepEqual(out.choices, [
      { index: 0, message: { role: 'assistant', content: REPLY }, logprobs: null, finish_reason: 'stop' },
    ]);
    assert.deepEqual(out.usage, {
      prompt_tokens: promptTokens, completion_tokens: replyTokens, total_tokens: promptTokens + replyTokens,
    });
  });

  test('max_tokens ends it with "length"', async () => {
    const { engine } = makeEngine();
    const out = await engine.chat.completions.create({ messages: [USER], max_tokens: 5 });
    assert.equal(out.choices[0].finish_reason, 'length');
    assert.equal(out.usage.completion_tokens, 5);
    assert.equal(out.choices[0].message.content, engine.tokenizer.decode(engine.tokenizer.encode(REPLY).slice(0, 5)));
  });

  test('a stop string cuts the text and ends it with "stop"', async () => {
    const { engine } = makeEngine();
    const out = await engine.chat.completions.create({ messages: [USER], stop: ['strainer starves', 'never'] });
    assert.equal(out.choices[0].message.content, 'Check the suction strainer first: a blocked ');
    assert.equal(out.choices[0].finish_reason, 'stop');
    assert.ok(out.usage.completion_tokens < engine.tokenizer.encode(REPLY).length);
    const single = await engine.chat.completions.create({ messages: [USER], stop: ':' });
    assert.equal(single.choices[0].message.content, 'Check the suction strainer first');
  });

  test('streams chunks: role first, then content, then the finish reason, then usage when asked', async () => {
    const { engine } = makeEngine();
    const chunks = await collect(await engine.chat.completions.create({
      messages: [USER], stream: true, stream_options: { include_usage: true },
    }));
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    const content = chunks.slice(1, -2);
    assert.ok(content.length > 5, 'text arrives in many pieces');
    assert.ok(content.every((c) => c.choices[0].finish_reason === null && c.choices[0].delta.content && c.usage === null));
    assert.equal(content.map((c) => c.choices[0].delta.content).join(''), REPLY);
    assert.deepEqual(chunks.at(-2).choices[0], { index: 0, delta: {}, logprobs: null, finish_reason: 'stop' });
    assert.deepEqual(chunks.at(-1).choices, []);
    assert.equal(chunks.at(-1).usage.completion_tokens, engine.tokenizer.encode(REPLY).length);

    const plain = await collect(await engine.chat.completions.create({ messages: [USER], stream: true, max_tokens: 3 }));
    assert.ok(plain.every((c) => !('usage' in c)));
    assert.equal(plain.at(-1).choices[0].finish_reason, 'length');
  });

  test('a follow-up turn runs only its new tokens (KV cache reuse)', async () => {
    const { engine, model } = makeEngine();
    const first = await engine.chat.completions.create({ messages: [USER] });
    const turn2 = [USER, first.choices[0].message, { role: 'user', content: 'And if the strainer is clean?' }];
    const prompt2 = engine.promptIds(turn2);
    const cached = [...engine.session.cached];
    let common = 0;
    while (common < cached.length && cached[common] === prompt2[common]) common++;
    assert.ok(common > engine.promptIds([USER]).length, 'the first reply is part of the reused prefix');
    model.calls.length = 0;
    await engine.chat.completions.create({ messages: turn2 });
    assert.equal(model.calls[0].pos, common);
    assert.deepEqual(model.calls[0].ids, prompt2.slice(common));
    assert.ok(model.calls.slice(1).every((c) => c.ids.length === 1));

    // the same request again: only the last prompt token runs before generating
    model.calls.length = 0;
    const again = await engine.chat.completions.create({ messages: turn2, max_tokens: 3 });
    assert.deepEqual(model.calls[0], { ids: prompt2.slice(-1), pos: prompt2.length - 1, logits: false });
    assert.equal(again.choices[0].message.content, engine.tokenizer.decode(engine.tokenizer.encode(REPLY).slice(0, 3)));

    // a different conversation shares only the system prompt
    model.calls.length = 0;
    engine.resetCache();
    await engine.chat.completions.create({ messages: [USER], max_tokens: 1 });
    assert.equal(model.calls[0].pos, 0);
  });

  test('a prompt longer than the context is a ContextOverflowError; the context end finishes with "length"', async () => {
    const { engine, model } = makeEngine({ context: 64 });
    const long = { role: 'user', content: 'vibration '.repeat(80) };
    await assert.rejects(engine.chat.completions.create({ messages: [long] }), (e) => {
      assert.ok(e instanceof ContextOverflowError && e instanceof InputError);
      assert.match(e.message, /the prompt has \d+ tokens but the context holds 64/);
      return true;
    });
    assert.equal(model.calls.length, 0);
    const promptTokens = engine.promptIds([USER]).length;
    const out = await engine.chat.completions.create({ messages: [USER] });
    assert.equal(out.choices[0].finish_reason, 'length');
    assert.equal(out.usage.completion_tokens, 64 - promptTokens + 1); // the last token is sampled, never run
  });

  test('an AbortSignal stops generation between tokens with an AbortError', async () => {
    const controller = new AbortController();
    const { engine, model } = makeEngine({
      onForward: () => { if (model.calls.length === 4) controller.abort(); },
    });
    await assert.rejects(engine.chat.completions.create({ messages: [USER], signal: controller.signal }),
      (e) => e instanceof DOMException && e.name === 'AbortError');
    assert.equal(model.calls.length, 4, 'no forward after the abort');

    // already aborted: nothing runs
    model.calls.length = 0;
    await assert.rejects(engine.chat.completions.create({ messages: [USER], signal: controller.signal }), { name: 'AbortError' });
    assert.equal(model.calls.length, 0);

    // a stream: the chunks so far arrive, then the iterator throws; the engine is free again afterwards
    const streamAbort = new AbortController();
    const pieces = [];
    await assert.rejects((async () => {
      const stream = await engine.chat.completions.create({ messages: [USER], stream: true, signal: streamAbort.signal });
      for await (const c of stream) {
        pieces.push(c);
        if (pieces.length === 3) streamAbort.abort();
      }
    })(), { name: 'AbortError' });
    assert.equal(pieces.length, 3);
    const after = await engine.chat.completions.create({ messages: [USER] });
    assert.equal(after.choices[0].message.content, REPLY);
  });

  test('breaking out of a stream frees the engine', async () => {
    const { engine } = makeEngine();
    for await (const c of await engine.chat.completions.create({ messages: [USER], stream: true })) {
      if (c.choices[0]?.delta.content) break;
    }
    const out = await engine.chat.completions.create({ messages: [USER] });
    assert.equal(out.choices[0].message.content, REPLY);
  });

  test('concurrent requests take turns', async () => {
    const { engine, model } = makeEngine();
    /** @type {string[]} */
    const order = [];
    const a = engine.chat.completions.create({ messages: [USER], max_tokens: 6 }).then(() => order.push('a'));
    const b = engine.chat.completions.create({ messages: [{ role: 'user', content: 'Other question?' }], max_tokens: 6 })
      .then(() => order.push('b'));
    await Promise.all([a, b]);
    assert.deepEqual(order, ['a', 'b']);
    const prefills = model.calls.map((c, i) => (c.ids.length > 1 ? i : -1)).filter((i) => i >= 0);
    assert.deepEqual(prefills, [0, 6], 'b prefills only after a ran its 6 steps');
  });

  test('sampling asks for logits and repeats for a seed', async () => {
    const { engine, model } = makeEngine();
    const request = { messages: [USER], temperature: 0.7, top_p: 0.9, seed: 1234, max_tokens: 12 };
    const a = await engine.chat.completions.create(request);
    assert.ok(model.calls.every((c) => c.logits));
    const b = await engine.chat.completions.create(request);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    assert.equal(a.choices[0].message.content, engine.tokenizer.decode(engine.tokenizer.encode(REPLY).slice(0, 12)));
  });

  test('bad requests reject with an InputError before anything runs', async () => {
    const { engine, model } = makeEngine();
    const bad = [
      { messages: [] }, { messages: [{ role: 'robot', content: 'x' }] }, { messages: [USER], n: 2 },
      { messages: [USER], max_tokens: 0 }, { messages: [USER], max_tokens: 2.5 }, { messages: [USER], top_p: -0.1 },
      { messages: [USER], temperature: -1 }, { messages: [USER], stop: [3] }, { messages: [USER], seed: 'x' },
    ];
    for (const request of bad) {
      await assert.rejects(engine.chat.completions.create(/** @type {any} */ (request)), InputError, JSON.stringify(request));
    }
    assert.equal(model.calls.length, 0);
  });

  test('a failed forward leaves the cache consistent: the next request reruns what is unknown', async () => {
    let fail = false;
    const { engine, model } = makeEngine({ onForward: () => { if (fail) { fail = false; throw new Error('GPU hiccup'); } } });
    await engine.chat.completions.create({ messages: [USER], max_tokens: 4 });
    fail = true;
    const turn2 = [USER, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'next' }];
    await assert.rejects(engine.chat.completions.create({ messages: turn2 }), /GPU hiccup/);
    model.calls.length = 0;
    const out = await engine.chat.completions.create({ messages: turn2 });
    assert.equal(out.choices[0].message.content, REPLY);
    assert.ok(model.calls[0].pos <= engine.promptIds([USER]).length);
  });

  test('generateIds mirrors the reference: ids until EOS (not yielded) or max_tokens', async () => {
    const { engine } = makeEngine();
    const prompt = engine.promptIds([USER]);
    const ids = [];
    for await (const id of engine.generateIds(prompt, { maxTokens: 500 })) ids.push(id);
    assert.deepEqual(ids, engine.tokenizer.encode(REPLY));
    const few = [];
    for await (const id of engine.generateIds(prompt, { maxTokens: 3 })) few.push(id);
    assert.deepEqual(few, ids.slice(0, 3));
  });
});

describe('Engine.create', () => {
  /** @param {{ok?: boolean, lost?: Promise<any>}} [opts] */
  function fakeGpuLayer({ ok = true, lost = new Promise(() => {}) } = {}) {
    const log = { destroyed: false, requiredLimits: /** @type {any} */ (null), loadOpts: /** @type {any} */ (null) };
    const device = { lost, destroy() { log.destroyed = true; } };
    const adapter = { async requestDevice(/** @type {any} */ d) { log.requiredLimits = d.requiredLimits; return device; } };
    const layer = {
      probe: async () => (ok ? { ok: true, adapter, limits: { maxBufferSize: 1 }, info: { vendor: 'fake' } }
        : { ok: false, reason: 'no adapter here' }),
      loadModel: async (/** @type {any} */ opts) => {
        log.loadOpts = opts;
        opts.onProgress?.({ loadedBytes: 10, totalBytes: 10, file: 'weights-00000.bin' });
        const model = new FakeModel({ manifest: pkg.manifest, marker: [1], reply: [], context: 256 });
        return model;
      },
    };
    return { layer: /** @type {any} */ (layer), log };
  }

  test('probes, requests the device with probe limits, loads tokenizer and model, reports progress', async () => {
    const { layer, log } = fakeGpuLayer();
    /** @type {any[]} */
    const progress = [];
    const engine = await Engine.create({
      gpu: /** @type {any} */ ({}), baseUrl: pathToFileURL(pkgDir), shaderBaseUrl: 'file:///shaders', fetch: fileFetch,
      vendor, gpuLayer: layer, context: 256, onProgress: (p) => progress.push(p),
    });
    assert.deepEqual(log.requiredLimits, { maxBufferSize: 1 });
    assert.equal(log.loadOpts.baseUrl.href, `${pathToFileURL(pkgDir).href}/`);
    assert.equal(log.loadOpts.shaderBaseUrl.href, 'file:///shaders/');
    assert.deepEqual(progress.map((p) => p.stage), ['manifest', 'tokenizer', 'weights', 'ready']);
    assert.equal(progress[2].file, 'weights-00000.bin');
    assert.deepEqual(engine.info, {
      model: pkg.manifest.name, packageId: pkg.manifest.package_id, context: 256, adapter: { vendor: 'fake' },
      engine: 'webgpu', threads: null,
    });
    assert.equal(engine.template.bosToken, '<|im_start|>');
    assert.equal(engine.template.eosToken, '<|im_end|>');
    engine.destroy();
    assert.ok(log.destroyed);
  });

  test('no WebGPU is a WebGPUUnavailableError with probe\'s reason', async () => {
    const { layer } = fakeGpuLayer({ ok: false });
    await assert.rejects(Engine.create({ gpu: undefined, baseUrl: pathToFileURL(pkgDir), shaderBaseUrl: 'file:///s/',
      fetch: fileFetch, vendor, gpuLayer: layer }), (e) => e instanceof WebGPUUnavailableError && e.message === 'no adapter here');
  });

  test('a corrupt tokenizer.json is an IntegrityError, and the device is released', async () => {
    const copy = join(scratchDir(), 'corrupt-package');
    cpSync(pkgDir, copy, { recursive: true });
    writeFileSync(join(copy, 'tokenizer.json'), JSON.stringify(pkg.tokenizerJson).replace('"Ġthe"', '"Ġteh"'));
    const { layer, log } = fakeGpuLayer();
    await assert.rejects(Engine.create({ gpu: /** @type {any} */ ({}), baseUrl: pathToFileURL(copy),
      shaderBaseUrl: 'file:///s/', fetch: fileFetch, vendor, gpuLayer: layer }), IntegrityError);
    assert.ok(log.destroyed);
    copyFileSync(join(pkgDir, 'tokenizer.json'), join(copy, 'tokenizer.json'));
  });

  test('after the device is lost, requests fail with DeviceLostError', async () => {
    const { layer } = fakeGpuLayer({ lost: Promise.resolve({ message: 'driver reset', reason: 'unknown' }) });
    const engine = await Engine.create({ gpu: /** @type {any} */ ({}), baseUrl: pathToFileURL(pkgDir),
      shaderBaseUrl: 'file:///s/', fetch: fileFetch, vendor, gpuLayer: layer });
    await new Promise((resolve) => setTimeout(resolve, 0));
    await assert.rejects(engine.chat.completions.create({ messages: [USER] }), DeviceLostError);
  });
});
