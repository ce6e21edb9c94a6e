// grammar.js: grammar-constrained decoding with @mlc-ai/web-xgrammar, the same way model_prep/reference/grammar.py does it with
// Python's xgrammar, so that one request means one grammar whichever engine answers:
//   a GrammarSpec says what the output must be ({kind: "json_schema", schema} or {kind: "structural_tag", tag}),
//   its key is sha256(`${kind}\n${compact JSON}`) (the audit's grammar hash, equal to Python's);
//   Grammars compiles specs against one tokenizer (json_schema: any_whitespace false, no indent, strict mode;
//   structural_tag: the tag's JSON) and keeps the last CACHE_SIZE; a Constraint follows one generation: bitmask() is
//   the u32[ceil(vocab / 32)] of tokens allowed next (what Model.forward's {mask} takes), accept(token) advances it,
//   finished() says the grammar allows nothing but a stop token next.
// The vocabulary handed to xgrammar is read from tokenizer.json exactly as vocab_from_tokenizer_json does.
// Also here: JSON text as Python's json module writes and reads it (the spec's canonical form, tool calls, the
// template's tojson), since the answers must be the same bytes as the Python side's.

import { InputError } from './errors.js';

/** @typedef {typeof import('@mlc-ai/web-xgrammar')} Xgrammar  the library's exports (see vendor.js) */
/** @typedef {import('@mlc-ai/web-xgrammar').CompiledGrammar} CompiledGrammar */
/** @typedef {import('@mlc-ai/web-xgrammar').GrammarMatcher} GrammarMatcher */

/** Compiled grammars kept per model (a schema compiles once, then its requests start at once). */
export const CACHE_SIZE = 32;

// JSON Schema keywords that xgrammar 0.1.27 turns into grammar rules (model_prep/reference/grammar.py SCHEMA_KEYWORDS, which
// says why the others are refused).
export const SCHEMA_KEYWORDS = Object.freeze(new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'minItems', 'maxItems',
  'enum', 'const', 'anyOf', '$ref', '$defs', 'definitions', 'minLength', 'maxLength',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
]));
const RANGES = new Set(['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']);
export const ANNOTATIONS = Object.freeze(new Set([
  'title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly',
]));

// --- JSON as Python writes and reads it -----------------------------------------------------------------------------

/** A float as Python's json module holds it: 1.0 stays a float (written "1.0"), unlike a JS number. */
export class PyFloat {
  /** @param {number} value */
  constructor(value) {
    this.value = value;
  }
}

/**
 * JSON values as the two sides hold them: plain JS values, or what parsePyJson returns (Map for an object, keeping
 * Python's key order; PyFloat for a number written with a fraction or exponent; bigint for an integer).
 * @typedef {null | boolean | number | bigint | string | PyFloat | PyJsonArray | PyJsonMap | PyJsonObject} PyJson
 */
/** @typedef {PyJson[]} PyJsonArray */
/** @typedef {Map<string, PyJson>} PyJsonMap */
/** @typedef {{[key: string]: PyJson}} PyJsonObject */

/** @param {unknown} value @returns {value is Record<string, unknown>} */
export function isPlainObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Map) &&
    !(value instanceof PyFloat);
}

/**
 * Python's repr() of a float (and json.dumps of it): the shortest digits that read back, fixed notation for
 * exponents -4..15 (with ".0" when whole), else d.ddde+XX.
 * @param {number} x
 */
export function pyFloatRepr(x) {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, expText] = x.toExponential().split('e'); // shortest round-trip digits
  const exp = Number(expText);
  const sign = mantissa.startsWith('-') ? '-' : '';
  const digits = mantissa.replace('-', '').replace('.', '');
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    const whole = digits.length > exp + 1 ? digits.slice(0, exp + 1) : digits.padEnd(exp + 1, '0');
    const frac = digits.slice(exp + 1) || '0';
    return `${sign}${whole}.${frac}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

/**
 * Python's str ordering (by code point; JS's default sort compares UTF-16 units).
 * @param {string} a @param {string} b
 */
function codePointCompare(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n;) {
    const ca = /** @type {number} */ (a.codePointAt(i));
    const cb = /** @type {number} */ (b.codePointAt(i));
    if (ca !== cb) return ca - cb;
    i += ca > 0xffff ? 2 : 1;
  }
  return a.length - b.length;
}

/** @param {string} s @param {boolean} ensureAscii */
function pyString(s, ensureAscii) {
  // JSON.stringify escapes what Python's json escapes (", \, control characters; \u00XX lowercase); Python's
  // ensure_ascii escapes every character outside space..~ as well
  const text = JSON.stringify(s);
  return ensureAscii
    ? text.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    : text;
}

/**
 * json.dumps(value) as Python writes it: default separators ", " and ": ", ensure_ascii true unless asked, integers
 * exact, floats as repr().
 * @param {PyJson | undefined} value
 * @param {{sortKeys?: boolean, ensureAscii?: boolean, itemSep?: string, keySep?: string}} [opts]
 * @returns {string}
 */
export function pyJson(value, opts = {}) {
  const { sortKeys = false, ensureAscii = true, itemSep = ', ', keySep = ': ' } = opts;
  /** @param {PyJson | undefined} v @returns {string} */
  const write = (v) => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'boolean') return v ? 'true' : 'false';
    if (typeof v === 'bigint') return v.toString();
    if (typeof v === 'number') return Number.isInteger(v) ? BigInt(v).toString() : pyFloatRepr(v);
    if (v instanceof PyFloat) return pyFloatRepr(v.value);
    if (typeof v === 'string') return pyString(v, ensureAscii);
    if (Array.isArray(v)) return `[${v.map(write).join(itemSep)}]`;
    const entries = v instanceof Map ? [...v.entries()] : Object.entries(v);
    if (sortKeys) entries.sort(([a], [b]) => codePointCompare(a, b));
    return `{${entries.map(([k, x]) => `${pyString(k, ensureAscii)}${keySep}${write(x)}`).join(itemSep)}}`;
  };
  return write(value);
}

/**
 * The spec's canonical JSON, as grammar.py's _canonical: compact ("," and ":"), no ASCII escaping, keys in the order
 * given (a schema's property order is the order the answer must follow). A JS object lists integer-like keys
 * ("1", "20") first whatever the request's text said: for such property names the order (and so the grammar and its
 * key) can differ from the server's.
 * @param {PyJson} value
 */
export function canonicalJson(value) {
  return pyJson(value, { ensureAscii: false, itemSep: ',', keySep: ':' });
}

/**
 * json.loads(text) as Python reads it: objects as Maps in Python's key order (a repeated key keeps its first place
 * and its last value), integers as bigint, other numbers as PyFloat, NaN and Infinity accepted. Throws SyntaxError.
 * @param {string} text
 * @returns {PyJson}
 */
export function parsePyJson(text) {
  let i = 0;
  const fail = (/** @type {string} */ what) => { throw new SyntaxError(`${what} at ${i}`); };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const number = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/y;
  /** @returns {PyJson} */
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      /** @type {Map<string, PyJson>} */
      const out = new Map();
      ws();
      if (text[i] === '}') { i++; return out; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        ws();
        if (text[i++] !== ':') fail('expected ":"');
        out.set(key, value());
        ws();
        const sep = text[i++];
        if (sep === '}') return out;
        if (sep !== ',') fail('expected "," or "}"');
      }
    }
    if (c === '[') {
      i++;
      /** @type {PyJson[]} */
      const out = [];
      ws();
      if (text[i] === ']') { i++; return out; }
      for (;;) {
        out.push(value());
        ws();
        const sep = text[i++];
        if (sep === ']') return out;
        if (sep !== ',') fail('expected "," or "]"');
      }
    }
    if (c === '"') return string();
    for (const [word, v] of /** @type {[string, PyJson][]} */ ([['null', null], ['true', true], ['false', false],
      ['NaN', new PyFloat(NaN)], ['Infinity', new PyFloat(Infinity)], ['-Infinity', new PyFloat(-Infinity)]])) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    number.lastIndex = i;
    const m = number.exec(text);
    if (!m) return fail('expected a value');
    i += m[0].length;
    return m[1] || m[2] ? new PyFloat(Number(m[0])) : BigInt(m[0]);
  };
  const string = () => {
    const start = i;
    i++; // the opening quote
    for (;;) {
      const c = text[i];
      if (c === undefined) fail('unterminated string');
      if (c === '"') break;
      if (c < ' ') fail('control character in a string'); // Python's strict mode
      i += c === '\\' ? 2 : 1;
    }
    i++;
    return /** @type {string} */ (JSON.parse(text.slice(start, i)));
  };
  const out = value();
  ws();
  if (i !== text.length) fail('extra data');
  return out;
}

/**
 * A value as Python's repr() shows it in a message: 'text' (or "it's"), None, True, numbers.
 * @param {unknown} value
 */
export function pyRepr(value) {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : pyFloatRepr(value);
  if (typeof value !== 'string') return pyJson(/** @type {PyJson} */ (value), { ensureAscii: false });
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  const body = value.replace(/[\\\n\r\t]|[\x00-\x1f\x7f]/g, (c) => ({ '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' })[c] ??
    `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return quote + (quote === "'" ? body.replaceAll("'", "\\'") : body) + quote;
}

// --- schemas and specs ------------------------------------------------------------------------------------------

/**
 * Refuses (InputError) a schema that uses a keyword the grammar cannot enforce, with grammar.py's messages.
 * @param {unknown} schema
 * @param {string} [where]
 */
export function checkSchema(schema, where = 'schema') {
  if (typeof schema === 'boolean') return;
  if (!isPlainObject(schema)) throw new InputError(`${where} must be a JSON Schema object`);
  for (const [key, value] of Object.entries(schema)) {
    if (ANNOTATIONS.has(key)) continue;
    if (!SCHEMA_KEYWORDS.has(key)) {
      throw new InputError(`${where} uses the JSON Schema keyword ${pyRepr(key)}, which constrained decoding cannot ` +
        `enforce; supported: ${[...SCHEMA_KEYWORDS].sort().join(', ')}`);
    }
    if (RANGES.has(key) && schema.type !== 'integer') {
      throw new InputError(`${where} has ${pyRepr(key)} on a non-integer; constrained decoding enforces ranges only ` +
        'for "type": "integer"');
    }
    if (key === 'properties' || key === '$defs' || key === 'definitions') {
      if (!isPlainObject(value)) throw new InputError(`${where}.${key} must be an object of schemas`);
      for (const [name, sub] of Object.entries(value)) checkSchema(sub, `${where}.${key}.${name}`);
    } else if ((key === 'items' || key === 'additionalProperties') && typeof value !== 'boolean') {
      checkSchema(value, `${where}.${key}`);
    } else if (key === 'anyOf') {
      if (!Array.isArray(value)) throw new InputError(`${where}.${key} must be a list of schemas`);
      value.forEach((sub, i) => checkSchema(sub, `${where}.${key}.${i}`));
    }
  }
}

/** @param {string} text @returns {Promise<string>} lowercase hex sha256 of its UTF-8 bytes */
export async function sha256Hex(text) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** What the output must be; grammar.py's GrammarSpec (same kind, same canonical body, same key). */
export class GrammarSpec {
  /**
   * @param {'json_schema' | 'structural_tag'} kind
   * @param {string} body  canonical JSON of the schema or the structural tag
   */
  constructor(kind, body) {
    this.kind = kind;
    this.body = body;
    /** @type {Promise<string> | null} */
    this.keyPromise = null;
  }

  /** @param {unknown} schema  a JSON Schema (object or boolean), checked against SCHEMA_KEYWORDS */
  static jsonSchema(schema) {
    checkSchema(schema);
    return new GrammarSpec('json_schema', canonicalJson(/** @type {PyJson} */ (schema)));
  }

  /** @param {Record<string, any>} tag  xgrammar's structural tag ({type: "structural_tag", format}) */
  static structuralTag(tag) {
    return new GrammarSpec('structural_tag', canonicalJson(tag));
  }

  /** sha256 of `${kind}\n${body}`, hex: the audit's grammar hash and the compile cache's key. */
  key() {
    this.keyPromise ??= sha256Hex(`${this.kind}\n${this.body}`);
    return this.keyPromise;
  }

  /** {kind, schema} or {kind, tag}, as grammar.py's to_json. */
  toJSON() {
    return { kind: this.kind, [this.kind === 'json_schema' ? 'schema' : 'tag']: JSON.parse(this.body) };
  }
}

// --- the vocabulary ---------------------------------------------------------------------------------------------

/**
 * @typedef {object} Vocab  what xgrammar needs to know of a tokenizer
 * @property {string[]} tokens  token string by id, "" for ids the tokenizer does not use
 * @property {'byte_level' | 'byte_fallback' | 'raw'} vocabType
 * @property {boolean} addPrefixSpace
 */

/**
 * A tokenizer.json component and, for a Sequence, its members.
 * @param {unknown} node
 * @returns {Record<string, any>[]}
 */
function parts(node) {
  if (!isPlainObject(node)) return [];
  const inner = /** @type {unknown[] | undefined} */ (node.decoders || node.pretokenizers || node.normalizers);
  return [node, ...(Array.isArray(inner) ? inner.flatMap(parts) : [])];
}

/**
 * grammar.py's vocab_from_tokenizer_json: token strings by id (added tokens included, overriding), the decoder's
 * kind, and whether a Metaspace pre-tokenizer or normalizer prepends a space.
 * @param {Record<string, any>} tokenizer  parsed tokenizer.json
 * @param {number} vocabSize  the model's (logits) vocabulary size
 * @returns {Vocab}
 */
export function vocabFromTokenizerJson(tokenizer, vocabSize) {
  const tokens = new Array(vocabSize).fill('');
  const table = tokenizer.model?.vocab ?? {};
  // BPE and WordPiece: {token: id}; Unigram: [[token, score], ...] by id
  const pairs = Array.isArray(table) ? table.map((p, i) => [p[0], i]) : Object.entries(table);
  for (const [text, i] of pairs) {
    if (Number.isInteger(i) && i >= 0 && i < vocabSize) tokens[i] = text;
  }
  for (const added of tokenizer.added_tokens ?? []) {
    if (added.id >= 0 && added.id < vocabSize) tokens[added.id] = added.content;
  }
  const kinds = new Set(parts(tokenizer.decoder).map((d) => d.type));
  const vocabType = kinds.has('ByteLevel') ? 'byte_level' : kinds.has('ByteFallback') ? 'byte_fallback' : 'raw';
  const addPrefixSpace = [...parts(tokenizer.pre_tokenizer), ...parts(tokenizer.normalizer)]
    .some((d) => d.type === 'Metaspace' && ('prepend_scheme' in d ? d.prepend_scheme : 'always') !== 'never');
  return { tokens, vocabType, addPrefixSpace };
}

// --- compiling and following grammars ---------------------------------------------------------------------------

/** The message the library printed before a failed compile aborted (it throws only "Aborted()"). */
let lastFatal = '';
let consoleHooked = false;

/**
 * web-xgrammar reports a grammar it cannot build by printing "[FATAL] file:line: message" and aborting the call;
 * keep that line so the InputError can say what is wrong. Installed before the library first runs.
 */
function hookConsole() {
  if (consoleHooked) return;
  consoleHooked = true;
  const original = console.error.bind(console);
  console.error = (/** @type {unknown[]} */ ...args) => {
    const text = args.map(String).join(' ');
    if (text.includes('[FATAL]')) {
      lastFatal = text;
      return;
    }
    original(...args);
  };
}

/** @param {unknown} e @returns {string} what xgrammar said about a spec it could not compile */
function compileMessage(e) {
  const said = lastFatal || (e instanceof Error ? e.message : `internal error ${String(e)}`);
  lastFatal = '';
  const line = said.trim().split('\n')[0];
  // "[FATAL] /path/file.cc:961: Check failed: (...) is false: Cannot find field..." -> from the message on
  return line.replace(/^\[FATAL\]\s*\S+:\d+:\s*/, '').replace(/^Check failed: \(.*?\) is false: /, '') ||
    'xgrammar refused it';
}

/** Bytes never part of structured output: C0 controls but line feed and carriage return (grammar.py CONTROL_BYTES). */
const CONTROL_BYTES = new Set([...Array(0x20).keys()].filter((b) => b !== 0x0a && b !== 0x0d));

/** @param {string} token @param {string} vocabType */
function hasControl(token, vocabType) {
  for (const ch of token) {
    const c = /** @type {number} */ (ch.codePointAt(0));
    if (CONTROL_BYTES.has(c)) return true;
    // GPT-2's byte-to-character map puts byte b < 0x21 at U+0100 + b
    if (vocabType === 'byte_level' && c >= 0x100 && c < 0x120 && CONTROL_BYTES.has(c - 0x100)) return true;
  }
  const m = vocabType === 'byte_fallback' ? /^<0x([0-9A-Fa-f]{2})>$/.exec(token) : null;
  return m !== null && CONTROL_BYTES.has(parseInt(m[1], 16));
}

/**
 * u32[ceil(vocab / 32)]: bit set for each token with no control byte (grammar.py plain_token_bits). xgrammar 0.1.27
 * lets such bytes into JSON strings raw, where JSON forbids them; every constrained generation masks them out.
 * @param {Vocab} vocab
 */
export function plainTokenBits(vocab) {
  const bits = new Uint32Array(Math.ceil(vocab.tokens.length / 32));
  vocab.tokens.forEach((t, i) => {
    if (!hasControl(t, vocab.vocabType)) bits[i >>> 5] |= 1 << (i & 31);
  });
  return bits;
}

export class Grammars {
  /**
   * Compiled grammars for one tokenizer; use Grammars.create.
   * @param {Xgrammar} xg
   * @param {import('@mlc-ai/web-xgrammar').GrammarCompiler} compiler
   * @param {number} vocabSize
   * @param {number[]} stopIds
   * @param {Uint32Array | null} [plain]  plainTokenBits of the vocabulary
   */
  constructor(xg, compiler, vocabSize, stopIds, plain = null) {
    this.xg = xg;
    this.compiler = compiler;
    this.vocabSize = vocabSize;
    this.stopIds = stopIds;
    /** @type {Uint32Array | null} tokens without control bytes (plainTokenBits) */
    this.plain = plain;
    /** @type {Map<string, CompiledGrammar>} key -> compiled, least recently used first */
    this.cache = new Map();
    /** @type {Map<string, Promise<CompiledGrammar>>} compiles in progress */
    this.compiling = new Map();
  }

  /**
   * @param {Xgrammar} xg  the library (vendor.js loadXgrammar)
   * @param {Vocab} vocab
   * @param {number[]} stopIds  the model's EOS ids
   */
  static async create(xg, vocab, stopIds) {
    hookConsole();
    const stops = [...stopIds].sort((a, b) => a - b);
    const info = await xg.TokenizerInfo.createTokenizerInfo(vocab.tokens, vocab.vocabType, vocab.addPrefixSpace,
      vocab.tokens.length, stops);
    const compiler = await xg.GrammarCompiler.createGrammarCompiler(info, false);
    return new Grammars(xg, compiler, vocab.tokens.length, stops, plainTokenBits(vocab));
  }

  /**
   * The compiled grammar of a spec, from the cache or compiled now; InputError if xgrammar cannot take it.
   * @param {GrammarSpec} spec
   * @returns {Promise<CompiledGrammar>}
   */
  async compile(spec) {
    const key = await spec.key();
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    let running = this.compiling.get(key);
    if (!running) {
      running = this.compileNow(spec).finally(() => this.compiling.delete(key));
      this.compiling.set(key, running);
      running.then((compiled) => {
        this.cache.set(key, compiled);
        if (this.cache.size > CACHE_SIZE) {
          const [oldest, grammar] = /** @type {[string, CompiledGrammar]} */ (this.cache.entries().next().value);
          this.cache.delete(oldest);
          grammar.dispose(); // a matcher made from it keeps its own reference
        }
      }, () => {});
    }
    return running;
  }

  /** @param {GrammarSpec} spec */
  async compileNow(spec) {
    lastFatal = '';
    try {
      if (spec.kind === 'json_schema') return await this.compiler.compileJSONSchema(spec.body, false, -1, undefined, true);
      if (spec.kind === 'structural_tag') return await this.compiler.compileStructuralTag(spec.body);
    } catch (e) {
      throw new InputError(`the output format cannot be turned into a grammar: ${compileMessage(e)}`);
    }
    throw new InputError(`unknown grammar kind ${pyRepr(spec.kind)}`);
  }

  /**
   * A fresh matcher of the spec's grammar, for one generation.
   * @param {GrammarSpec} spec
   */
  async constraint(spec) {
    const matcher = await this.xg.GrammarMatcher.createGrammarMatcher(await this.compile(spec));
    return new Constraint(matcher, this.vocabSize, this.stopIds, this.plain);
  }
}

/** One generation's place in its grammar (grammar.py's Constraint). */
export class Constraint {
  /**
   * @param {GrammarMatcher} matcher
   * @param {number} vocabSize
   * @param {number[]} stopIds
   * @param {Uint32Array | null} [plain]  tokens without control bytes: masked in with the grammar's
   */
  constructor(matcher, vocabSize, stopIds, plain = null) {
    this.matcher = matcher;
    this.vocabSize = vocabSize;
    const words = Math.ceil(vocabSize / 32);
    /** @type {Uint32Array} u32[ceil(vocab / 32)]: the stop tokens' bits */
    this.stop = new Uint32Array(words);
    for (const id of stopIds) if (id >= 0 && id < vocabSize) this.stop[id >>> 5] |= 1 << (id & 31);
    /** @type {Uint32Array} u32[ceil(vocab / 32)]: ids < vocab in the last word */
    this.valid = new Uint32Array(words).fill(0xffffffff);
    if (vocabSize % 32) this.valid[words - 1] = (2 ** (vocabSize % 32) - 1) >>> 0;
    if (plain) for (let w = 0; w < words; w++) this.valid[w] &= plain[w];
    /** @type {Uint32Array | null} the bitmask for the current state, once computed */
    this.mask = null;
  }

  /**
   * u32[ceil(vocab / 32)]: the tokens allowed next (bit i % 32 of word i / 32), as the GPU's argmax reads them.
   * @returns {Promise<Uint32Array>}
   */
  async bitmask() {
    if (!this.mask) {
      const words = await this.matcher.getNextTokenBitmask();
      const mask = new Uint32Array(words.buffer, words.byteOffset, words.length);
      for (let w = 0; w < mask.length; w++) mask[w] &= this.valid[w];
      this.mask = mask;
    }
    return this.mask;
  }

  /** @param {number} token */
  accept(token) {
    if (!this.matcher.acceptToken(token)) {
      throw new Error(`the grammar refused token ${token}, which its own mask allowed`);
    }
    this.mask = null;
  }

  /** The output is complete: the grammar allows nothing but a stop token next (so no model step is needed). */
  async finished() {
    const mask = await this.bitmask();
    let any = false;
    for (let w = 0; w < mask.length; w++) {
      if (mask[w] & ~this.stop[w]) return false;
      if (mask[w]) any = true;
    }
    return any;
  }

  /** Frees the matcher (the WASM heap is not garbage-collected). */
  dispose() {
    this.matcher.dispose();
  }
}
