// engine.js: an OpenAI-shaped chat API over a Model (gpu/model.js), the tokenizer, the chat template and the sampler:
//   const engine = await Engine.create({gpu: navigator.gpu, baseUrl, shaderBaseUrl});
//   const reply = await engine.chat.completions.create({messages, max_tokens: 200});
//   for await (const chunk of await engine.chat.completions.create({messages, stream: true})) ...
// Requests run one at a time. The KV cache outlives a request: a follow-up turn runs only its new tokens.
// A stream holds the engine from its first read until it ends, is broken out of (for await ... break), or is
// aborted: a stream read partly and then dropped without return() blocks later requests.

import { ChatTemplate } from './chat-template.js';
import { DeviceLostError, EngineError, FormatError, WebGPUUnavailableError, throwIfAborted } from './errors.js';
import { checkPromptFits, generateIds } from './generate.js';
import { fetchManifest, fetchVerified } from './gpu/package.js';
import { KvSession } from './kv-session.js';
import { chunk, completion, newCompletionIdentity, usage } from './openai-shapes.js';
import { parseRequest } from './request-options.js';
import { Sampler } from './sampler.js';
import { StopTextStream } from './stop-text.js';
import { TextTokenizer } from './tokenizer.js';
import { importVendor } from './vendor.js';

/** @typedef {import('./request-options.js').ChatRequest} ChatRequest */
/** @typedef {import('./request-options.js').RequestOptions} RequestOptions */
/** @typedef {import('./openai-shapes.js').ChatCompletion} ChatCompletion */
/** @typedef {import('./openai-shapes.js').ChatCompletionChunk} ChatCompletionChunk */
/** @typedef {import('./openai-shapes.js').FinishReason} FinishReason */
/** @typedef {import('./vendor.js').Vendor} Vendor */
/** @typedef {import('./gpu/package.js').Manifest} Manifest */
/**
 * @typedef {object} EngineModel  the part of gpu/model.js's Model the engine uses (tests pass a fake)
 * @property {Manifest} manifest
 * @property {number} context  KV positions allocated
 * @property {(ids: number[], pos: number, opts?: {logits?: boolean, mask?: Uint32Array | null}) =>
 *            Promise<{token: number, logprob: number, logits?: Float32Array}>} forward  mask: the grammar's token
 *            bitmask (u32[ceil(vocab / 32)]); token: argmax of the allowed logits; logprob: its masked-softmax log-prob
 * @property {() => void} destroy
 */
/**
 * @typedef {object} LoadProgress  what Engine.create reports while it loads
 * @property {'manifest' | 'tokenizer' | 'weights' | 'ready'} stage
 * @property {number} [loadedBytes]  weights: bytes fetched so far, of totalBytes
 * @property {number} [totalBytes]
 * @property {string} [file]         weights: the shard being fetched
 */
/**
 * @typedef {object} CreateOptions
 * @property {GPU | null | undefined} gpu       navigator.gpu, or Dawn's GPU object under Node
 * @property {string | URL} baseUrl            the model package folder
 * @property {string | URL} shaderBaseUrl      the webgpu_shaders/ folder
 * @property {typeof fetch} [fetch]
 * @property {number} [context]                KV positions to allocate (default: the GPU layer's, capped by the model)
 * @property {number} [passTokens]             prompt tokens per prefill pass (GPU layer default)
 * @property {(p: LoadProgress) => void} [onProgress]
 * @property {AbortSignal} [signal]            aborts the load
 * @property {Vendor} [vendor]                 the npm libraries, if already imported (see vendor.js)
 * @property {import('./vendor.js').VendorUrls} [vendorUrls]  where to import them from otherwise
 * @property {{probe: typeof import('./gpu/probe.js').probe, loadModel: typeof import('./gpu/model.js').loadModel}}
 *           [gpuLayer]                        the GPU layer's entry points (default: ./gpu/)
 */

/** Makes concurrent callers take turns: `const release = await lock.acquire()` ... `release()`. */
class TurnLock {
  constructor() {
    /** @type {Promise<void>} */
    this.tail = Promise.resolve();
  }

  acquire() {
    /** @type {() => void} */
    let release = () => {};
    const turn = new Promise((resolve) => { release = () => resolve(undefined); });
    const ready = this.tail.then(() => release);
    this.tail = this.tail.then(() => turn);
    return ready;
  }
}

/** @param {string | URL} url */
function absoluteFolder(url) {
  const base = typeof location === 'undefined' ? undefined : location.href;
  const u = new URL(String(url), base);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u;
}

export class Engine {
  /**
   * @param {{model: EngineModel, tokenizer: TextTokenizer, template: ChatTemplate, device?: GPUDevice | null,
   *          adapterInfo?: object | null}} parts  device: destroyed with the engine (pass it only if the engine owns it)
   */
  constructor({ model, tokenizer, template, device = null, adapterInfo = null }) {
    this.model = model;
    this.manifest = model.manifest;
    /** The `model` field of every response: the package's name. */
    this.name = model.manifest.name;
    /** @type {Record<string, any>} manifest.generation: defaults and special token ids */
    this.generation = model.manifest.generation ?? {};
    this.tokenizer = tokenizer;
    this.template = template;
    /** @type {ReadonlySet<number>} */
    this.eosIds = new Set((this.generation.eos_token_ids ?? []).map(Number));
    this.session = new KvSession(model);
    this.device = device;
    this.info = { model: this.name, packageId: this.manifest.package_id ?? null, context: model.context, adapter: adapterInfo };
    this.lock = new TurnLock();
    /** @type {string | null} why the device was lost, once it is */
    this.lostReason = null;
    device?.lost.then((lost) => { this.lostReason = lost.message || lost.reason; });
    /** OpenAI's client shape: engine.chat.completions.create(request). */
    this.chat = { completions: { create: this.createChatCompletion.bind(this) } };
  }

  /**
   * An engine over a loaded model and the package's tokenizer.json.
   * @param {{model: EngineModel, vendor: Vendor, tokenizerJson: object, device?: GPUDevice | null,
   *          adapterInfo?: object | null}} parts
   */
  static fromParts({ model, vendor, tokenizerJson, device = null, adapterInfo = null }) {
    const manifest = model.manifest;
    const tokenizer = new TextTokenizer(vendor.Tokenizer, tokenizerJson);
    const gen = manifest.generation ?? {};
    // the strings the template may print for bos_token / eos_token, as model_prep/reference.py passes them
    const bosToken = gen.bos_token_id != null ? tokenizer.idToToken(gen.bos_token_id) ?? '' : '';
    const eosIds = (gen.eos_token_ids ?? []).map(Number);
    const eosToken = eosIds.length ? tokenizer.idToToken(Math.min(...eosIds)) ?? '' : '';
    if (typeof manifest.chat_template !== 'string' || !manifest.chat_template) {
      throw new FormatError(`${manifest.name} has no chat template in manifest.json: prepare the package again`);
    }
    const template = new ChatTemplate(vendor.Template, manifest.chat_template, { bosToken, eosToken });
    return new Engine({ model, tokenizer, template, device, adapterInfo });
  }

  /**
   * Probes the GPU, then loads the package's manifest, tokenizer.json (sha256-checked) and weights.
   * @param {CreateOptions} opts
   * @returns {Promise<Engine>}
   */
  static async create(opts) {
    const { signal, onProgress } = opts;
    const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    const baseUrl = absoluteFolder(opts.baseUrl);
    const shaderBaseUrl = absoluteFolder(opts.shaderBaseUrl);
    const gpuLayer = opts.gpuLayer ?? {
      probe: (await import('./gpu/probe.js')).probe,
      loadModel: (await import('./gpu/model.js')).loadModel,
    };
    onProgress?.({ stage: 'manifest' });
    const manifest = await fetchManifest(baseUrl, fetchFn, signal);
    const probed = await gpuLayer.probe(opts.gpu, manifest, { context: opts.context, passTokens: opts.passTokens });
    if (!probed.ok || !probed.adapter) throw new WebGPUUnavailableError(probed.reason ?? 'no WebGPU adapter');
    throwIfAborted(signal);
    const device = await probed.adapter.requestDevice({ requiredLimits: probed.limits });
    try {
      const vendor = opts.vendor ?? await importVendor(opts.vendorUrls);
      onProgress?.({ stage: 'tokenizer' });
      const tokenizerJson = await fetchTokenizerJson(baseUrl, manifest, fetchFn, signal);
      const model = await gpuLayer.loadModel({
        device, baseUrl, shaderBaseUrl, fetch: fetchFn, context: opts.context, passTokens: opts.passTokens, signal,
        onProgress: (p) => onProgress?.({ stage: 'weights', ...p }),
      });
      const engine = Engine.fromParts({ model, vendor, tokenizerJson, device, adapterInfo: probed.info ?? null });
      onProgress?.({ stage: 'ready' });
      return engine;
    } catch (e) {
      device.destroy();
      throw e;
    }
  }

  /** KV positions: prompt + completion must fit. */
  get context() {
    return this.model.context;
  }

  /**
   * The prompt's token ids: the chat template rendered, then encoded without added special tokens.
   * @param {unknown} messages
   */
  promptIds(messages) {
    return this.tokenizer.encode(this.template.render(messages));
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
   * OpenAI's chat.completions.create. Bad requests and prompts too long for the context reject here; a stream's
   * errors (AbortError included) come from its iterator.
   * @param {ChatRequest} request
   * @returns {Promise<ChatCompletion | AsyncGenerator<ChatCompletionChunk, void, void>>}
   */
  async createChatCompletion(request) {
    this.checkDevice();
    const opts = parseRequest(request, this.generation);
    throwIfAborted(opts.signal);
    const prompt = this.promptIds(opts.messages);
    checkPromptFits(prompt.length, this.context);
    const identity = newCompletionIdentity();
    if (opts.stream) return this.chunks(opts, prompt, identity);
    let content = '';
    const report = { finish: /** @type {FinishReason} */ ('length'), completionTokens: 0 };
    for await (const piece of this.pieces(opts, prompt, report)) content += piece.text;
    return completion(identity, this.name, content, report.finish, usage(prompt.length, report.completionTokens));
  }

  /**
   * The stream of chunks: role first, then content pieces, then the finish reason, then (if asked) usage.
   * @param {RequestOptions} opts
   * @param {number[]} prompt
   * @param {{id: string, created: number}} identity
   * @returns {AsyncGenerator<ChatCompletionChunk, void, void>}
   */
  async* chunks(opts, prompt, identity) {
    const { includeUsage } = opts;
    yield chunk(identity, this.name, { role: 'assistant', content: '' }, null, includeUsage);
    const report = { finish: /** @type {FinishReason} */ ('length'), completionTokens: 0 };
    for await (const piece of this.pieces(opts, prompt, report)) {
      if (piece.text) yield chunk(identity, this.name, { content: piece.text }, null, includeUsage);
    }
    yield chunk(identity, this.name, {}, report.finish, includeUsage);
    if (includeUsage) yield chunk(identity, this.name, null, null, true, usage(prompt.length, report.completionTokens));
  }

  /**
   * Text pieces of one completion (model_prep/reference.py `stream`), holding the engine for its whole run.
   * @param {RequestOptions} opts
   * @param {number[]} prompt
   * @param {{finish: FinishReason, completionTokens: number}} report  filled in when the pieces end
   * @returns {AsyncGenerator<import('./stop-text.js').Piece, void, void>}
   */
  async* pieces(opts, prompt, report) {
    const release = await this.lock.acquire();
    try {
      throwIfAborted(opts.signal);
      this.checkDevice();
      const text = new StopTextStream((ids) => this.tokenizer.decode(ids), opts.stops);
      const loop = { finish: /** @type {FinishReason} */ ('length') };
      const tokens = generateIds(this.session, prompt,
        { maxTokens: opts.maxTokens, sampler: opts.sampler, eosIds: this.eosIds, signal: opts.signal }, loop);
      for await (const token of tokens) {
        const piece = text.push(token);
        if (piece) yield piece;
        if (text.stopped) break;
      }
      const tail = text.flush();
      if (tail) yield tail;
      report.finish = text.stopped ? 'stop' : loop.finish;
      report.completionTokens = text.tokens.length;
    } finally {
      release();
    }
  }

  /**
   * Token ids of a completion of `prompt` (no template, no stop strings), as model_prep/reference.py
   * `generate_ids`: ends at EOS (not yielded), max_tokens, or the context's end. Shares the KV cache.
   * @param {number[]} prompt
   * @param {{maxTokens: number, temperature?: number, topP?: number, seed?: number | null,
   *          signal?: AbortSignal | null}} opts
   * @returns {AsyncGenerator<number, void, void>}
   */
  async* generateIds(prompt, { maxTokens, temperature = 0, topP = 1, seed = null, signal = null }) {
    const sampler = new Sampler({ temperature, topP, seed });
    const release = await this.lock.acquire();
    try {
      this.checkDevice();
      yield* generateIds(this.session, prompt, { maxTokens, sampler, eosIds: this.eosIds, signal }, { finish: 'length' });
    } finally {
      release();
    }
  }

  /**
   * Logits f32[vocab] of the last of `ids` run at positions pos.. (model_prep/reference.py `Engine.logits`).
   * @param {number[]} ids
   * @param {number} [pos]
   */
  async logits(ids, pos = 0) {
    const release = await this.lock.acquire();
    try {
      this.checkDevice();
      const step = await this.session.run(ids, pos, true);
      if (!step.logits) throw new EngineError('the model returned no logits');
      return step.logits;
    } finally {
      release();
    }
  }

  /** Forget the KV cache: the next request runs its whole prompt. */
  resetCache() {
    this.session.reset();
  }

  checkDevice() {
    if (this.lostReason !== null) {
      throw new DeviceLostError(`the GPU device was lost (${this.lostReason}): reload the page to start the engine again`);
    }
  }

  /** Frees the model's GPU memory (and the device, if the engine made it). */
  destroy() {
    this.model.destroy();
    this.device?.destroy();
    this.device = null;
  }
}

/**
 * tokenizer.json, fetched and checked against the manifest's size and sha256.
 * @param {URL} baseUrl
 * @param {Manifest} manifest
 * @param {typeof fetch} fetchFn
 * @param {AbortSignal} [signal]
 */
async function fetchTokenizerJson(baseUrl, manifest, fetchFn, signal) {
  const path = manifest.tokenizer ?? 'tokenizer.json';
  const entry = manifest.files.find((f) => f.path === path);
  if (!entry) throw new FormatError(`manifest.json lists no ${path}: prepare the package again`);
  const bytes = await fetchVerified(baseUrl, entry, fetchFn, { signal });
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new FormatError(`${path} is not JSON (${/** @type {Error} */ (e).message}): prepare the package again`);
  }
}
