// app/engine/server-client.js on its own, against a scripted fetch: what it sends, how it reads server-sent events
// split anywhere, and which error each failure becomes (the end-to-end path is tests/pwa/test_server_fallback.py).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ContextOverflowError, InputError, ServerAuthError, ServerError } from '../../app/engine/errors.js';
import { ServerEngine } from '../../app/engine/server-client.js';

const MODELS = { object: 'list', data: [{ id: 'smollm2', object: 'model' }] };

/** @param {unknown} body @param {number} [status] */
const json = (body, status = 200) => new Response(JSON.stringify(body), {
  status, headers: { 'content-type': 'application/json' },
});

/** A streamed body delivered in pieces of `size` characters (events split mid-line). @param {string} text */
function sse(text, size = 7) {
  const enc = new TextEncoder();
  let at = 0;
  return new Response(new ReadableStream({
    pull(c) {
      if (at >= text.length) return c.close();
      c.enqueue(enc.encode(text.slice(at, at + size)));
      at += size;
    },
  }), { headers: { 'content-type': 'text/event-stream' } });
}

/** @param {string} content */
const chunk = (content) => `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content } }] })}\n\n`;

/**
 * A fetch that answers GET …/v1/models with MODELS and the chat request with `answer()`; records what it was sent.
 * @param {() => Response} answer
 */
function scripted(answer) {
  /** @type {{url: string, init: any}[]} */
  const sent = [];
  /** @type {typeof fetch} */
  const fetchFn = async (url, init) => {
    sent.push({ url: String(url), init });
    return String(url).endsWith('/v1/models') ? json(MODELS) : answer();
  };
  return { sent, fetchFn };
}

/** @param {AsyncIterable<any>} stream */
async function text(stream) {
  let out = '';
  for await (const c of stream) out += c.choices[0]?.delta?.content ?? '';
  return out;
}

describe('ServerEngine', () => {
  test('streams the chunks of an answer split at arbitrary bytes, and sends the body as given', async () => {
    const { sent, fetchFn } = scripted(() => sse(`${chunk('The capital')}${chunk(' is Paris.')}data: [DONE]\n\n`));
    const engine = await ServerEngine.connect({ baseUrl: 'http://lan-box:8000/app/', fetch: fetchFn });
    assert.equal(engine.info.name, 'smollm2');
    const messages = [{ role: 'user', content: 'What is the capital of France?' }];
    const stream = await engine.chat.completions.create({ messages, stream: true, max_tokens: 12, seed: 3 });
    assert.equal(await text(stream), 'The capital is Paris.');
    assert.equal(sent[1].url, 'http://lan-box:8000/app/v1/chat/completions');
    assert.equal(sent[1].init.method, 'POST');
    assert.deepEqual(JSON.parse(sent[1].init.body), { model: 'smollm2', messages, stream: true, max_tokens: 12, seed: 3 });
  });

  test('an error event after the 200 is thrown, not swallowed', async () => {
    const error = { error: { message: 'the engine failed; see the server log', type: 'server_error' } };
    const { fetchFn } = scripted(() => sse(`${chunk('Check')}data: ${JSON.stringify(error)}\n\n`));
    const engine = await ServerEngine.connect({ baseUrl: 'http://x/', fetch: fetchFn });
    const stream = await engine.chat.completions.create({ messages: [], stream: true });
    await assert.rejects(text(stream), (e) => e instanceof ServerError && /the engine failed/.test(e.message));
  });

  test('a stream cut before [DONE] is an error', async () => {
    const { fetchFn } = scripted(() => sse(chunk('Check the')));
    const engine = await ServerEngine.connect({ baseUrl: 'http://x/', fetch: fetchFn });
    await assert.rejects(text(await engine.chat.completions.create({ messages: [], stream: true })), ServerError);
  });

  test('4xx bodies become the engine\'s error classes with the server\'s message', async () => {
    /** @type {[() => Response, new (...a: any[]) => Error, string][]} */
    const cases = [
      [() => json({ error: { message: 'the prompt has 3000 tokens', code: 'context_length_exceeded' } }, 400),
        ContextOverflowError, 'the prompt has 3000 tokens'],
      [() => json({ error: { message: 'max_tokens must be >= 1', code: 'invalid_value' } }, 400), InputError,
        'max_tokens must be >= 1'],
      [() => json({ error: { message: 'the queue is full; retry in 3 s', code: 'queue_full' } }, 429), ServerError,
        'retry in 3 s'],
    ];
    for (const [answer, Class, fragment] of cases) {
      const { fetchFn } = scripted(answer);
      const engine = await ServerEngine.connect({ baseUrl: 'http://x/', fetch: fetchFn });
      await assert.rejects(engine.chat.completions.create({ messages: [] }),
        (e) => e instanceof Class && e.message.includes(fragment));
    }
  });

  test('a non-streamed answer is the server\'s JSON', async () => {
    const completion = { object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Paris.' } }] };
    const { fetchFn } = scripted(() => json(completion));
    const engine = await ServerEngine.connect({ baseUrl: 'http://x/', fetch: fetchFn });
    assert.deepEqual(await engine.chat.completions.create({ messages: [] }), completion);
  });

  test('a host without the API (static files, 404) or unreachable says what to do', async () => {
    /** @type {typeof fetch} */
    const notFound = async () => new Response('<h1>Not found</h1>', { status: 404 });
    await assert.rejects(ServerEngine.connect({ baseUrl: 'http://static/', fetch: notFound }),
      (e) => e instanceof ServerError && /fieldllm serve/.test(e.message));
    /** @type {typeof fetch} */
    const down = async () => { throw new TypeError('fetch failed'); };
    await assert.rejects(ServerEngine.connect({ baseUrl: 'http://down/', fetch: down }),
      (e) => e instanceof ServerError && /cannot be reached/.test(e.message));
  });

  test('a server started with a token gets it on every request; without it, ServerAuthError', async () => {
    const { sent, fetchFn } = scripted(() => sse(`${chunk('Paris.')}data: [DONE]\n\n`));
    const engine = await ServerEngine.connect({ baseUrl: 'http://x/', fetch: fetchFn, token: 'k3y' });
    await text(await engine.chat.completions.create({ messages: [], stream: true }));
    assert.deepEqual(sent.map((r) => r.init.headers.authorization), ['Bearer k3y', 'Bearer k3y']);
    /** @type {typeof fetch} */
    const wantsKey = async () => json({ error: { message: 'missing or wrong API key', code: 'invalid_api_key' } }, 401);
    await assert.rejects(ServerEngine.connect({ baseUrl: 'http://x/', fetch: wantsKey }),
      (e) => e instanceof ServerAuthError && e.name === 'ServerAuthError' && /access key/.test(e.message));
  });
});
