// engine.js: an OpenAI-shaped chat API over a Model (gpu/model.js on WebGPU, or cpu/model.js in WebAssembly), the
// tokenizer, the chat template and the sampler:
//   const engine = await Engine.create({gpu: navigator.gpu, baseUrl, shaderBaseUrl});   // or {engine: 'cpu', baseUrl}
//   const reply = await engine.chat.completions.create({messages, max_tokens: 200});
//   for await (const chunk of await engine.chat.completions.create({messages, stream: true})) ...
// Requests run one at a time. The KV cache outlives a request: a follow-up turn runs only its new tokens.
// Structured requests (response_format, tools) compile their grammar before they wait for the engine (a schema the
// grammar cannot take is an InputError, never a looser answer); the grammar library loads on the first of them.
// A stream holds the engine from its first read until it ends, is broken out of (for await ... break), or is
// aborted: a stream read partly and then dropped without return() blocks later requests.

import { ChatTemplate } from './chat-template.js';
import {
  CpuUnavailableError, DeviceLostError, EngineError, FormatError, InputError, WebGPUUnavailableError, throwIfAborted,
} from './errors.js';
import { checkPromptFits, generateIds, generatePicks } from './generate.js';
import { fetchManifest, fetchVerified } from './gpu/package.js';
import { GrammarSpec, Grammars, vocabFromTokenizerJson } from './grammar.js';
import { KvSession } from './kv-session.js';
import { chunk, completion, newCompletionIdentity, timings, usage } from './openai-shapes.js';
import { parseRequest } from './request-options.js';
import { Sampler } from './sampler.js';
import { StopTextStream } from './stop-text.js';
import { CallStream, checkAnswer, splitToolCalls } from './structured.js';
import { TextTokenizer } from './tokenizer.js';
import { importVendor } from './vendor.js';

/** @typedef {import('./request-options.js').ChatRequest} ChatRequest */
/** @typedef {import('./request-options.js').RequestOptions} RequestOptions */
/** @typedef {import('./openai-shapes.js').ChatCompletion} ChatCompletion */
/** @typedef {import('./openai-shapes.js').ChatCompletionChunk} ChatCompletionChunk */
/** @typedef {import('./openai-shapes.js').FinishReason} FinishReason */
/** @typedef {import('./vendor.js').Vendor} Vendor */
/** @typedef {import('./gpu/package.js').Manifest} Manifest */
/** @typedef {import('./sampler.js').Pick} Pick */
/** @typedef {import('./structured.js').Structure} Structure */
/** @typedef {import('./structured.js').ToolCall} ToolCall */
/** @typedef {import('./openai-shapes.js').ChoiceLogprobs} ChoiceLogprobs */
/** @typedef {import('./openai-shapes.js').Timings} Timings */
/** @typedef {import('./vendor.js').Xgrammar} Xgrammar */
/**
 * @typedef {object} Piece  text released by the token loop, with the tokens it accounts for
 * @property {string} text
 * @property {Pick[]} picks
 */
/**
 * @typedef {object} Report  how a completion ended, filled in when its pieces end
 * @property {FinishReason} finish  "stop" or "length" ("tool_calls" is decided from the text afterwards)
 * @property {number} completionTokens
 * @property {Timings | null} timings
 */
/**
 * @typedef {object} EngineModel  the part of gpu/model.js's Model the engine uses (tests pass a fake)
 * @property {Manifest} manifest
 * @property {number} context  KV positions allocated
 * @property {(ids: number[], pos: number, opts?: {logits?: boolean, mask?: Uint32Array | null}) =>
 *            Promise<{token: number, logprob: number, logits?: Float32Array}>} forward  mask: the grammar's token
 *            bitmask (u32[ceil(vocab / 32)]); token: argmax of the allowed logits; logprob: its masked-softmax log-prob
 * @property {() => void} destroy
 * @property {object} [stats]  what the model says of itself; cpu/model.js: {kind: "cpu-wasm", threads, ...}
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
 * @property {'webgpu' | 'cpu'} [engine]       which layer runs the model (default webgpu; choice.js decides)
 * @property {GPU | null | undefined} [gpu]     navigator.gpu, or Dawn's GPU object under Node (webgpu)
 * @property {string | URL} baseUrl            the model package folder
 * @property {string | URL} [shaderBaseUrl]    the webgpu_shaders/ folder (webgpu)
 * @property {string | URL} [wasmUrl]          cpu_engine.wasm (cpu; default: beside cpu/model.js)
 * @property {number | null} [deviceMemory]    navigator.deviceMemory, for the CPU probe (cpu)
 * @property {number} [threads]                threads to compute on (cpu; default: the cores, at most 4, where the
 *                                              page is cross-origin isolated, else 1)
 * @property {typeof fetch} [fetch]
 * @property {number} [context]                KV positions to allocate (default: the GPU layer's, capped by the model)
 * @property {number} [passTokens]             prompt tokens per prefill pass (GPU layer default)
 * @property {(p: LoadProgress) => void} [onProgress]
 * @property {AbortSignal} [signal]            aborts the load
 * @property {Vendor} [vendor]                 the npm libraries, if already imported (see vendor.js)
 * @property {import('./vendor.js').VendorUrls} [vendorUrls]  where to import them from otherwise
 * @property {{probe: typeof import('./gpu/probe.js').probe, loadModel: typeof import('./gpu/model.js').loadModel}}
 *           [gpuLayer]                        the GPU layer's entry points (default: ./gpu/)
 * @property {{probe: typeof import('./cpu/probe.js').probeCpu, loadModel: typeof import('./cpu/model.js').loadModel}}
 *           [cpuLayer]                        the CPU layer's entry points (default: ./cpu/)
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
   *          adapterInfo?: object | null, tokenizerJson?: object | null,
   *          loadXgrammar?: (() => Promise<Xgrammar>) | null}} parts  device: destroyed with the engine (pass it only
   *   if the engine owns it); tokenizerJson and loadXgrammar: for structured output (vendor.js)
   */
  constructor({ model, tokenizer, template, device = null, adapterInfo = null, tokenizerJson = null, loadXgrammar = null }) {
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
    const stats = /** @type {{kind?: string, threads?: number} | undefined} */ (model.stats);
    const cpu = stats?.kind === 'cpu-wasm';
    /** engine: which layer runs the model ("cpu": cpu/model.js, else "webgpu"); threads: the CPU engine's */
    this.info = {
      model: this.name, packageId: this.manifest.package_id ?? null, context: model.context, adapter: adapterInfo,
      engine: /** @type {'webgpu' | 'cpu'} */ (cpu ? 'cpu' : 'webgpu'), threads: cpu ? stats?.threads ?? 1 : null,
    };
    this.lock = new TurnLock();
    this.tokenizerJson = tokenizerJson;
    this.loadXgrammar = loadXgrammar;
    /** @type {Promise<Grammars> | null} the compiled-grammar cache, made on the first structured request */
    this.grammarsPromise = null;
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
    // the strings the template may print for bos_token / eos_token, as model_prep/reference/engine.py passes them
    const bosToken = gen.bos_token_id != null ? tokenizer.idToToken(gen.bos_token_id) ?? '' : '';
    const eosIds = (gen.eos_token_ids ?? []).map(Number);
    const eosToken = eosIds.length ? tokenizer.idToToken(Math.min(...eosIds)) ?? '' : '';
    if (typeof manifest.chat_template !== 'string' || !manifest.chat_template) {
      throw new FormatError(`${manifest.name} has no chat template in manifest.json: prepare the package again`);
    }
    const template = new ChatTemplate(vendor.Template, manifest.chat_template, { bosToken, eosToken });
    return new Engine({
      model, tokenizer, template, device, adapterInfo, tokenizerJson, loadXgrammar: vendor.loadXgrammar ?? null,
    });
  }

  /**
   * Probes the GPU, then loads the package's manifest, tokenizer.json (sha256-checked) and weights.
   * @param {CreateOptions} opts
   * @returns {Promise<Engine>}
   */
  static async create(opts) {
    if (opts.engine === 'cpu') return Engine.createCpu(opts);
    const { signal, onProgress } = opts;
    const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    const baseUrl = absoluteFolder(opts.baseUrl);
    if (!opts.shaderBaseUrl) throw new InputError('Engine.create needs shaderBaseUrl (the webgpu_shaders/ folder) for WebGPU');
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

  /**
   * The CPU engine (cpu/model.js, WebAssembly): probes the browser and the package's heap, then loads the manifest,
   * tokenizer.json and weights (each sha256-checked) into a WebAssembly heap.
   * @param {CreateOptions} opts
   * @returns {Promise<Engine>}
   */
  static async createCpu(opts) {
    const { signal, onProgress } = opts;
    const fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    const baseUrl = absoluteFolder(opts.baseUrl);
    const cpuLayer = opts.cpuLayer ?? {
      probe: (await import('./cpu/probe.js')).probeCpu,
      loadModel: (await import('./cpu/model.js')).loadModel,
    };
    onProgress?.({ stage: 'manifest' });
    const manifest = await fetchManifest(baseUrl, fetchFn, signal);
    const probed = cpuLayer.probe(manifest, {
      context: opts.context, passTokens: opts.passTokens, deviceMemory: opts.deviceMemory ?? null,
    });
    if (!probed.ok) throw new CpuUnavailableError(probed.reason ?? 'the CPU engine cannot run here');
    throwIfAborted(signal);
    const vendor = opts.vendor ?? await importVendor(opts.vendorUrls);
    onProgress?.({ stage: 'tokenizer' });
    const tokenizerJson = await fetchTokenizerJson(baseUrl, manifest, fetchFn, signal);
    const model = await cpuLayer.loadModel({
      baseUrl, fetch: fetchFn, context: opts.context, passTokens: opts.passTokens, threads: opts.threads, signal,
      wasmUrl: opts.wasmUrl ? new URL(String(opts.wasmUrl), typeof location === 'undefined' ? undefined : location.href) : undefined,
      onProgress: (p) => onProgress?.({ stage: 'weights', ...p }),
    });
    try {
      const engine = Engine.fromParts({ model, vendor, tokenizerJson });
      onProgress?.({ stage: 'ready' });
      return engine;
    } catch (e) {
      model.destroy();
      throw e;
    }
  }

  /** KV positions: prompt + completion must fit. */
  get context() {
    return this.model.context;
  }

  /**
   * The prompt's token ids: the chat template rendered (with the tools shown to the model, if any), then encoded
   * without added special tokens.
   * @param {unknown} messages
   * @param {any[] | null} [tools]
   */
  promptIds(messages, tools = null) {
    return this.tokenizer.encode(this.template.render(messages, { tools }));
  }

  /**
   * The compiled-grammar cache for this model's tokenizer (model_prep/reference/engine.py `grammars`); loads the grammar
   * library on first use.
   * @returns {Promise<Grammars>}
   */
  grammars() {
    this.grammarsPromise ??= (async () => {
      if (!this.loadXgrammar || !this.tokenizerJson) {
        throw new EngineError('this engine has no grammar library (vendor.loadXgrammar) or tokenizer.json: ' +
          'structured output is not available');
      }
      const xg = await this.loadXgrammar();
      const vocab = vocabFromTokenizerJson(/** @type {Record<string, any>} */ (this.tokenizerJson),
        this.manifest.config.vocab_size);
      return Grammars.create(xg, vocab, [...this.eosIds]);
    })();
    this.grammarsPromise.catch(() => { this.grammarsPromise = null; });
    return this.grammarsPromise;
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
    const { grammar, tools } = opts.structure;
    if (grammar) await (await this.grammars()).compile(grammar); // before the queue; kept for the next request
    const prompt = this.promptIds(opts.messages, tools);
    checkPromptFits(prompt.length, this.context);
    const identity = newCompletionIdentity();
    if (opts.stream) return this.chunks(opts, prompt, identity);
    let text = '';
    /** @type {Pick[]} */
    const picks = [];
    const report = newReport();
    for await (const piece of this.pieces(opts, prompt, report)) {
      text += piece.text;
      picks.push(...piece.picks);
    }
    const answer = finalMessage(text, report.finish, opts.structure);
    return completion(identity, this.name, {
      ...answer, usage: usage(prompt.length, report.completionTokens), timings: report.timings,
      logprobs: opts.logprobs ? this.choiceLogprobs(picks) : null,
    });
  }

  /**
   * The stream of chunks (app/server/local.py `_events`): role first, then content pieces and whole tool calls
   * (each call in one delta), then the finish reason with the timings, then (if asked) usage.
   * @param {RequestOptions} opts
   * @param {number[]} prompt
   * @param {{id: string, created: number}} identity
   * @returns {AsyncGenerator<ChatCompletionChunk, void, void>}
   */
  async* chunks(opts, prompt, identity) {
    const { includeUsage, structure } = opts;
    const out = (/** @type {import('./openai-shapes.js').Delta | null} */ delta, /** @type {FinishReason | null} */ finish,
      /** @type {{logprobs?: ChoiceLogprobs | null, timings?: Timings | null}} */ extra = {}) =>
      chunk(identity, this.name, delta, finish, includeUsage, null, extra);
    yield out({ role: 'assistant', content: '' }, null);
    const calls = structure.callsTools ? new CallStream() : null;
    let index = 0;
    let text = '';
    const engine = this;
    /**
     * @param {string} piece  new text
     * @param {Pick[]} picks  the tokens it accounts for
     * @param {boolean} final
     */
    function* deltas(piece, picks, final) {
      text += piece;
      let logprobs = opts.logprobs ? engine.choiceLogprobs(picks) : null;
      const parts = calls ? [...calls.push(piece), ...(final ? calls.flush() : [])] : piece ? [piece] : [];
      for (const part of parts) {
        if (typeof part === 'string') {
          if (!part) continue;
          yield out({ content: part }, null, { logprobs });
        } else {
          yield out({ tool_calls: [{ index: index++, id: part.id, type: 'function', function: part.function }] }, null,
            { logprobs });
        }
        logprobs = null;
      }
      if (logprobs) yield out({}, null, { logprobs }); // tokens with no text of their own: their logprobs still go out
    }
    const report = newReport();
    for await (const piece of this.pieces(opts, prompt, report)) yield* deltas(piece.text, piece.picks, false);
    yield* deltas('', report.leftover, true);
    const { finish } = finalMessage(text, report.finish, structure);
    yield out({}, finish, { timings: report.timings });
    if (includeUsage) yield chunk(identity, this.name, null, null, true, usage(prompt.length, report.completionTokens));
  }

  /**
   * Text pieces of one completion (model_prep/reference/engine.py `stream`), holding the engine for its whole run.
   * @param {RequestOptions} opts
   * @param {number[]} prompt
   * @param {Report & {leftover: Pick[]}} report  filled in when the pieces end; leftover: tokens whose text never
   *   came out (they decode to nothing), for their logprobs
   * @returns {AsyncGenerator<Piece, void, void>}
   */
  async* pieces(opts, prompt, report) {
    const grammar = opts.structure.grammar;
    const grammars = grammar ? await this.grammars() : null;
    const release = await this.lock.acquire();
    /** @type {import('./grammar.js').Constraint | null} */
    let constraint = null;
    try {
      throwIfAborted(opts.signal);
      this.checkDevice();
      if (grammars && grammar) constraint = await grammars.constraint(grammar);
      const text = new StopTextStream((ids) => this.tokenizer.decode(ids), opts.stops);
      const loop = { finish: /** @type {'stop' | 'length'} */ ('length') };
      /** @type {Pick[]} picks not yet released with text */
      const queue = [];
      const started = performance.now();
      let first = 0;
      const picks = generatePicks(this.session, prompt, {
        maxTokens: opts.maxTokens, sampler: opts.sampler, eosIds: this.eosIds, constraint, signal: opts.signal,
      }, loop);
      for await (const pick of picks) {
        if (!first) first = performance.now();
        queue.push(pick);
        const piece = text.push(pick.token);
        if (piece) yield { text: piece.text, picks: queue.splice(0, piece.tokenIds.length) };
        if (text.stopped) break;
      }
      const tail = text.flush();
      if (tail) yield { text: tail.text, picks: queue.splice(0, tail.tokenIds.length) };
      const end = performance.now();
      if (!first) first = end;
      report.finish = text.stopped ? 'stop' : loop.finish;
      report.completionTokens = text.tokens.length;
      report.timings = timings(first - started, this.session.prefilled, end - first, text.tokens.length);
      report.leftover = queue;
    } finally {
      constraint?.dispose();
      release();
    }
  }

  /**
   * OpenAI's logprobs of some picked tokens (app/server/answer.py `logprobs`); null when there are none.
   * @param {Pick[]} picks
   * @returns {ChoiceLogprobs | null}
   */
  choiceLogprobs(picks) {
    if (!picks.length) return null;
    const encoder = new TextEncoder();
    const entry = (/** @type {number} */ id, /** @type {number} */ logprob) => {
      const token = this.tokenizer.decode([id]);
      return { token, logprob, bytes: Array.from(encoder.encode(token)) };
    };
    return {
      content: picks.map((p) => ({ ...entry(p.token, p.logprob), top_logprobs: p.top.map(([id, lp]) => entry(id, lp)) })),
      refusal: null,
    };
  }

  /**
   * Token ids of a completion of `prompt` (no template, no stop strings), as model_prep/reference/engine.py
   * `generate_ids`: ends at EOS (not yielded), max_tokens, or the context's end. Shares the KV cache.
   * With `grammar` (a GrammarSpec, or its JSON {kind, schema | tag}), the ids follow it as generate_picks's do
   * under a Constraint, ending when the grammar is complete.
   * @param {number[]} prompt
   * @param {{maxTokens: number, temperature?: number, topP?: number, seed?: number | null,
   *          signal?: AbortSignal | null, grammar?: GrammarSpec | {kind: string, schema?: any, tag?: any} | null}} opts
   * @returns {AsyncGenerator<number, void, void>}
   */
  async* generateIds(prompt, { maxTokens, temperature = 0, topP = 1, seed = null, signal = null, grammar = null }) {
    const sampler = new Sampler({ temperature, topP, seed });
    const spec = grammar === null || grammar instanceof GrammarSpec ? grammar
      : grammar.kind === 'json_schema' ? GrammarSpec.jsonSchema(grammar.schema)
        : grammar.kind === 'structural_tag' ? GrammarSpec.structuralTag(grammar.tag) : null;
    if (grammar && !spec) throw new InputError(`unknown grammar kind ${String(grammar.kind)}`);
    const grammars = spec ? await this.grammars() : null;
    const release = await this.lock.acquire();
    /** @type {import('./grammar.js').Constraint | null} */
    let constraint = null;
    try {
      this.checkDevice();
      if (grammars && spec) constraint = await grammars.constraint(spec);
      yield* generateIds(this.session, prompt, { maxTokens, sampler, eosIds: this.eosIds, signal, constraint },
        { finish: 'length' });
    } finally {
      constraint?.dispose();
      release();
    }
  }

  /**
   * Logits f32[vocab] of the last of `ids` run at positions pos.. (model_prep/reference/engine.py `Engine.logits`).
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

/** @returns {Report & {leftover: Pick[]}} */
function newReport() {
  return { finish: 'length', completionTokens: 0, timings: null, leftover: [] };
}

/**
 * (content, tool_calls, finish_reason) of a whole answer (app/server/answer.py `final_message`), checked against
 * what was asked when it is complete.
 * @param {string} text
 * @param {FinishReason} finish  "stop" or "length"
 * @param {Structure} structure
 * @returns {{content: string | null, toolCalls: ToolCall[] | null, finish: FinishReason}}
 */
function finalMessage(text, finish, structure) {
  if (structure.callsTools) {
    const { content, calls } = splitToolCalls(text);
    if (finish === 'stop') checkAnswer(text, structure, calls);
    const toolCalls = calls.length ? calls : null;
    return { content: content || null, toolCalls, finish: toolCalls && finish === 'stop' ? 'tool_calls' : finish };
  }
  if (finish === 'stop') checkAnswer(text, structure, []);
  return { content: text, toolCalls: null, finish };
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
