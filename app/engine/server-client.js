// server-client.js: the same API as EngineClient (chat.completions.create, resetCache, destroy), answered by the
// fallback server's OpenAI-compatible /v1/chat/completions (`fieldllm serve`) instead of this device's GPU. The app
// picks it when the probe finds no usable WebGPU; the calling code does not change.
//
//   const engine = await ServerEngine.connect({baseUrl: document.baseURI});
//   for await (const chunk of await engine.chat.completions.create({messages, stream: true, signal})) ...
//
// The request body is OpenAI's, sent as given (minus `signal`, which aborts the fetch); the server validates it and
// its 4xx bodies become this module's errors, with the server's own message. A server started with a token
// (`fieldllm serve --token`) gets it as `Authorization: Bearer`; without it, or with a wrong one, ServerAuthError.

import { ContextOverflowError, InputError, ServerAuthError, ServerError, abortError } from './errors.js';

/** @typedef {import('./request-options.js').ChatRequest} ChatRequest */
/** @typedef {import('./openai-shapes.js').ChatCompletion} ChatCompletion */
/** @typedef {import('./openai-shapes.js').ChatCompletionChunk} ChatCompletionChunk */

/** Where the API lives, relative to the app's base URL (the server serves both). */
const API = 'v1/';

export class ServerEngine {
  /**
   * Asks the server which model it serves; rejects with ServerError when there is no such API here (a static host,
   * the server is down), ServerAuthError when it wants a token that `token` is not.
   * @param {{baseUrl: string | URL, fetch?: typeof fetch, signal?: AbortSignal, token?: string | null}} opts
   * @returns {Promise<ServerEngine>}
   */
  static async connect(opts) {
    const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    const api = new URL(API, opts.baseUrl);
    const headers = authHeaders(opts.token);
    const r = await send(fetchFn, new URL('models', api), { signal: opts.signal, headers },
      `GET ${api.pathname}models`);
    /** @type {any} */
    let list;
    try {
      list = await r.json();
    } catch {
      list = null;
    }
    const model = list?.data?.[0]?.id;
    if (typeof model !== 'string') {
      throw new ServerError(`${api.origin} has no fallback API (GET ${api.pathname}models lists no model): start ` +
        'the app with `fieldllm serve` to answer from the server');
    }
    return new ServerEngine(api, model, fetchFn, opts.token);
  }

  /**
   * @param {URL} api  absolute URL of the API folder (…/v1/)
   * @param {string} model  the id the server lists
   * @param {typeof fetch} fetchFn
   * @param {string | null} [token]  the server's access key, sent as a bearer token
   */
  constructor(api, model, fetchFn, token = null) {
    this.api = api;
    this.fetch = fetchFn;
    this.headers = authHeaders(token);
    /** What the app shows about the engine in use. */
    this.info = { name: model, where: 'server', origin: api.origin };
    /** OpenAI's client shape: client.chat.completions.create(request). */
    this.chat = { completions: { create: this.createChatCompletion.bind(this) } };
  }

  /**
   * @overload
   * @param {ChatRequest & {stream: true}} request
   * @returns {Promise<AsyncGenerator<ChatCompletionChunk, void, void>>}
   */
  /**
   * @overload
   * @param {ChatRequest & {stream?: false | null}} request
   * @returns {Promise<ChatCompletion>}
   */
  /**
   * @overload
   * @param {ChatRequest} request
   * @returns {Promise<ChatCompletion | AsyncGenerator<ChatCompletionChunk, void, void>>}
   */
  /**
   * EngineClient.createChatCompletion, answered by the server.
   * @param {ChatRequest} request
   * @returns {Promise<ChatCompletion | AsyncGenerator<ChatCompletionChunk, void, void>>}
   */
  async createChatCompletion(request) {
    const { signal, ...body } = request;
    const r = await send(this.fetch, new URL('chat/completions', this.api), {
      method: 'POST',
      headers: {
        ...this.headers, 'content-type': 'application/json', accept: body.stream ? 'text/event-stream' : 'application/json',
      },
      body: JSON.stringify({ model: this.info.name, ...body }),
      signal: signal ?? undefined,
    }, 'the request');
    if (!body.stream) return r.json();
    return chunks(r, signal ?? null);
  }

  /** The server keeps no conversation state between requests: nothing to reset. */
  resetCache() {}

  /** Nothing to free: no worker, no GPU memory. */
  destroy() {}
}

/**
 * @param {string | null | undefined} token
 * @returns {Record<string, string>}
 */
function authHeaders(token) {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/**
 * fetch() for the API: a network failure becomes ServerError (AbortError when `init.signal` aborted it), an error
 * status the error its body describes (errorOf). Never from the HTTP cache: answers and the model list are live.
 * @param {typeof fetch} fetchFn
 * @param {URL} url
 * @param {RequestInit} init
 * @param {string} what  what was asked, for messages
 * @returns {Promise<Response>}  an ok response
 */
async function send(fetchFn, url, init, what) {
  /** @type {Response} */
  let r;
  try {
    r = await fetchFn(url, { ...init, cache: 'no-store' });
  } catch (e) {
    if (init.signal?.aborted) throw abortError();
    throw new ServerError(`the fallback server at ${url.origin} cannot be reached (${String(e)}): check the network`);
  }
  if (!r.ok) throw await errorOf(r, what);
  return r;
}

/**
 * The OpenAI-shaped chunks of a server-sent event stream ("data: {json}\n\n" ... "data: [DONE]\n\n"). An error
 * event (the server streams errors once the 200 is sent) is thrown.
 * @param {Response} r
 * @param {AbortSignal | null} signal
 * @returns {AsyncGenerator<ChatCompletionChunk, void, void>}
 */
async function* chunks(r, signal) {
  if (!r.body) throw new ServerError('the fallback server sent an empty stream: see the server log');
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      let read;
      try {
        read = await reader.read();
      } catch (e) {
        if (signal?.aborted) throw abortError();
        throw new ServerError(`the connection to the fallback server broke mid-answer (${String(e)}): ask again`);
      }
      if (read.done) break;
      buffer += read.value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        if (data === '[DONE]') return;
        const payload = JSON.parse(data);
        if (payload.error) throw classify(0, payload.error);
        yield payload;
      }
    }
    throw new ServerError('the fallback server ended the answer without [DONE]: see the server log');
  } finally {
    reader.cancel().catch(() => undefined); // breaking out of the loop hangs up, which frees the server's slot
  }
}

/**
 * @param {Response} r  a response with an error status
 * @param {string} what  what was asked, for the message
 */
async function errorOf(r, what) {
  /** @type {any} */
  let body = null;
  try {
    body = await r.json();
  } catch {
    // not JSON: a static host's 404 page, a proxy's error page
  }
  if (body?.error?.message) return classify(r.status, body.error);
  if (r.status === 404 || r.status === 405) {
    return new ServerError(`${new URL(r.url || 'http://server').origin} has no fallback API (${what}: ${r.status}): ` +
      'start the app with `fieldllm serve` to answer from the server');
  }
  return new ServerError(`the fallback server answered ${what} with ${r.status} ${r.statusText}: see the server log`);
}

/**
 * @param {number} status
 * @param {{message: string, code?: string | null}} error  OpenAI's error object
 */
function classify(status, error) {
  if (error.code === 'context_length_exceeded') return new ContextOverflowError(error.message);
  if (status === 401 || error.code === 'invalid_api_key') {
    return new ServerAuthError(`the fallback server wants an access key: ${error.message}`);
  }
  if (status === 400 || status === 422) return new InputError(error.message);
  return new ServerError(`the fallback server says: ${error.message}`);
}
