// rules.js: the rules file (app/field/rules.json) and the tasks file (app/field/tasks.json): read, checked, indexed.
// The same code as app/field/rules.py, message for message (tests/field/vectors.json pins both). No DOM, no I/O:
// the caller fetches the files and hands in their bytes (then .sha256 is set) or their parsed JSON.

import { Compiled, phraseRegex } from './patterns.js';
import { sha256Hex } from './sha256.js';

export const FORMAT = 'fieldllm-rules';
export const VERSION = 1;
export const TASKS_FORMAT = 'fieldllm-tasks';
export const TASKS_VERSION = 1;
export const KINDS = Object.freeze(['fault', 'triage', 'screening']);
export const DOMAINS = Object.freeze(['clinical', 'equipment']);
/** @type {Readonly<Record<string, string>>} */
export const DOMAIN_OF_KIND = Object.freeze({ fault: 'equipment', triage: 'clinical', screening: 'clinical' });
/** @type {Readonly<Record<string, string>>} */
export const OPS = Object.freeze({ '<': '<', '<=': '≤', '>': '>', '>=': '≥', outside: 'outside' });
const LIMIT_PLACEHOLDERS = ['label', 'value', 'op', 'limit', 'asset'];
const PHRASE_PLACEHOLDERS = ['label', 'text'];
/** @type {Record<string, string[]>} the templated texts a card uses, with the placeholders each may hold */
const TEXTS = {
  implausible: ['label', 'value', 'range'],
  low_confidence: [],
  escalate_invalid: ['reasons'],
  escalate_cut: ['reasons'],
  invalid: [],
  cut: [],
  remeasure: ['reasons'],
};
export const ALLOW_LISTS = Object.freeze(['triage_interventions', 'screening_next_steps']);

/** A rules or tasks file that cannot be used, or a request that names something they do not define. */
export class RulesError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'RulesError';
  }
}

/** A reading that cannot be used: an unknown quantity or unit, a value that is not a number. */
export class ReadingError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ReadingError';
  }
}

/**
 * A value as it appears in a message, the same on the Python and the JS side.
 * @param {unknown} x
 */
export function show(x) {
  if (typeof x === 'string') return x;
  if (x === null || x === undefined) return 'null';
  if (typeof x === 'boolean') return x ? 'true' : 'false';
  if (typeof x === 'number') return Number.isFinite(x) ? String(x) : 'null';
  return Array.isArray(x) ? '(a list)' : '(an object)';
}

/** @param {unknown} x @returns {x is Record<string, any>} */
export const isObject = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);
/** @param {unknown} x @returns {x is number} */
export const isNumber = (x) => typeof x === 'number' && Number.isFinite(x);

/**
 * @typedef {object} Unit
 * @property {string} id
 * @property {string} display
 * @property {boolean} joined   no space between number and symbol ("84%")
 * @property {string[]} aliases matched in any case
 * @property {string[]} exact   matched in this case only ("A", not "a")
 */
/**
 * @typedef {object} Quantity
 * @property {string} id
 * @property {string} label
 * @property {string} domain
 * @property {string} canonical_unit
 * @property {Map<string, [number, number]>} units  unit -> [factor, offset]: canonical = (value + offset) * factor
 * @property {string | null} default_unit
 * @property {Array<[number | null, string]>} bare_units
 * @property {[number, number]} plausible  in the canonical unit
 * @property {string[]} words
 * @property {string[]} unit_words  words that name it only when a unit follows the number
 */
/**
 * @typedef {object} Limit
 * @property {string} id
 * @property {string} quantity
 * @property {string} op
 * @property {Map<string, any>} limits  unit -> number, or [low, high] for "outside"; the first is the primary unit
 * @property {string[]} kinds
 * @property {string | null} asset_class
 * @property {string | null} asset
 * @property {string[]} replaces
 * @property {string} message
 */
/**
 * @typedef {object} PhraseRule
 * @property {string} id
 * @property {string} label
 * @property {string[]} kinds
 * @property {string[]} phrases
 * @property {string[]} excepts
 * @property {string} message
 * @property {RegExp} pattern
 * @property {RegExp | null} exceptPattern
 */
/** @typedef {{id: string, cls: string, label: string, aliases: string[]}} Asset */
/** @typedef {{before: string[], after: string[], window: number, break_chars: string, break_words: string[]}} Negation */

/** @param {string} msg */
const fail = (msg) => new RulesError(`rules: ${msg}`);

/** @param {unknown} x @param {string} where @returns {Record<string, any>} */
function obj(x, where) {
  if (!isObject(x)) throw fail(`${where} must be an object`);
  return x;
}

/** @param {unknown} x @param {string} where @returns {string} */
function text(x, where) {
  if (typeof x !== 'string' || !x) throw fail(`${where} must be a non-empty string`);
  return x;
}

/** @param {unknown} x @param {string} where @returns {number} */
function num(x, where) {
  if (!isNumber(x)) throw fail(`${where} must be a number`);
  return x;
}

/** @param {unknown} x @param {string} where @returns {string[]} */
function texts(x, where) {
  if (!Array.isArray(x) || !x.length || !x.every((s) => typeof s === 'string' && s)) {
    throw fail(`${where} must be a non-empty list of non-empty strings`);
  }
  return [...x];
}

/** @param {Record<string, any>} d @param {string} key @param {string} where */
const optTexts = (d, key, where) => (key in d ? texts(d[key], `${where}.${key}`) : []);

/** @param {string} template @param {string[]} allowed @param {string} where */
function checkTemplate(template, allowed, where) {
  for (const m of template.matchAll(/\{([^{}]*)\}/g)) {
    if (!allowed.includes(m[1])) throw fail(`${where}: unknown placeholder "{${m[1]}}"`);
  }
}

/** @param {Record<string, any>} d @param {string} where */
function kindsOf(d, where) {
  if (!('kinds' in d)) return [...KINDS];
  const kinds = texts(d.kinds, `${where}.kinds`);
  for (const k of kinds) {
    if (!KINDS.includes(k)) throw fail(`${where}: unknown kind "${k}" (kinds are ${KINDS.join(', ')})`);
  }
  return kinds;
}

/**
 * @param {unknown} data @param {string} what @param {string} format @param {number} version
 * @returns {Record<string, any>}
 */
export function checkHeader(data, what, format, version) {
  if (!isObject(data)) throw new RulesError(`${what}: not a JSON object`);
  if (data.format !== format || data.version !== version) {
    throw new RulesError(`${what}: unsupported format "${show(data.format)}" version ${show(data.version)}: ` +
      `this reader supports format "${format}" version ${version}`);
  }
  return data;
}

/** A checked rules file. `data` is the file as parsed; the rest are indexes and compiled patterns. */
export class Rules {
  /**
   * @param {Record<string, any>} data
   * @param {string | null} sha256
   */
  constructor(data, sha256) {
    this.data = data;
    this.sha256 = sha256;
    /** @type {number} */
    this.version = data.version;
    this.rules_version = '';
    this.confidence_threshold = 0;
    /** @type {Map<string, Unit>} */
    this.units = new Map();
    /** @type {Map<string, Quantity>} */
    this.quantities = new Map();
    /** @type {Map<string, Map<string, string>>} */
    this.unit_defaults = new Map();
    /** @type {string[]} */
    this.bp_words = [];
    this.bp_systolic = '';
    this.bp_diastolic = '';
    this.bp_unit = '';
    this.bp_form_quantity = '';
    /** @type {string[]} */
    this.hour_words = [];
    /** @type {string[]} */
    this.not_after_bare_number = [];
    /** @type {Map<string, [string, string[]]>} id -> [label, keywords] */
    this.asset_classes = new Map();
    /** @type {Map<string, Asset>} */
    this.assets = new Map();
    /** @type {Limit[]} */
    this.limits = [];
    /** @type {PhraseRule[]} */
    this.phrases = [];
    /** @type {Negation} */
    this.negation = { before: [], after: [], window: 1, break_chars: '', break_words: [] };
    /** @type {Map<string, string[]>} */
    this.allow_lists = new Map();
    /** @type {string[]} */
    this.diagnosis_phrases = [];
    /** @type {Record<string, string>} */
    this.texts = {};
    checkRules(this, data);
    this.compiled = new Compiled(this);
  }

  /** @param {unknown} qid @returns {Quantity} */
  quantity(qid) {
    const q = typeof qid === 'string' ? this.quantities.get(qid) : undefined;
    if (!q) throw new ReadingError(`unknown quantity "${show(qid)}": use one of ${[...this.quantities.keys()].join(', ')}`);
    return q;
  }

  /**
   * The unit an alias names (any case; "exact" aliases in their own case only), or null.
   * @param {string} alias
   */
  resolveUnit(alias) {
    return this.compiled.unitByExact.get(exactKeyOf(alias)) ?? this.compiled.unitByAlias.get(keyOf(alias)) ?? null;
  }
}

/** @param {string} s */
const keyOf = (s) => s.toLowerCase().replace(/[ \t\u00a0:=-]/g, '');
/** @param {string} s */
const exactKeyOf = (s) => s.replace(/[ \t\u00a0:=-]/g, '');

/** @param {Rules} r @param {Record<string, any>} d */
function checkRules(r, d) {
  r.rules_version = text(d.rules_version, '"rules_version"');
  const t = d.confidence_threshold;
  if (!isNumber(t) || !(t >= 0 && t <= 1)) throw fail('"confidence_threshold" must be a number from 0 to 1');
  r.confidence_threshold = t;

  for (const [uid, u0] of Object.entries(obj(d.units, '"units"'))) {
    const where = `units.${uid}`;
    const u = obj(u0, where);
    if (typeof u.display !== 'string') throw fail(`${where}.display must be a string`);
    const aliases = texts(u.aliases, `${where}.aliases`);
    r.units.set(uid, { id: uid, display: u.display, joined: u.joined === true, aliases, exact: optTexts(u, 'exact', where) });
  }

  for (const [qid, q] of Object.entries(obj(d.quantities, '"quantities"'))) {
    r.quantities.set(qid, checkQuantity(r, qid, obj(q, `quantities.${qid}`)));
  }

  for (const [domain, table] of Object.entries(obj(d.unit_defaults, '"unit_defaults"'))) {
    if (!DOMAINS.includes(domain)) throw fail(`unit_defaults: unknown domain "${domain}" (domains are clinical, equipment)`);
    /** @type {Map<string, string>} */
    const out = new Map();
    for (const [uid, qid] of Object.entries(obj(table, `unit_defaults.${domain}`))) {
      const q = typeof qid === 'string' ? r.quantities.get(qid) : undefined;
      if (!q) throw fail(`unit_defaults.${domain}: unknown quantity "${show(qid)}"`);
      if (!q.units.has(uid)) throw fail(`unit_defaults.${domain}: quantity "${qid}" does not take unit "${uid}"`);
      out.set(uid, qid);
    }
    r.unit_defaults.set(domain, out);
  }

  const bp = obj(d.blood_pressure, '"blood_pressure"');
  r.bp_words = texts(bp.words, 'blood_pressure.words');
  for (const key of ['systolic', 'diastolic']) {
    if (typeof bp[key] !== 'string' || !r.quantities.has(bp[key])) {
      throw fail(`blood_pressure.${key}: unknown quantity "${show(bp[key])}"`);
    }
  }
  r.bp_systolic = bp.systolic;
  r.bp_diastolic = bp.diastolic;
  r.bp_unit = text(bp.unit, 'blood_pressure.unit');
  for (const key of ['systolic', 'diastolic']) {
    if (!r.quantity(bp[key]).units.has(r.bp_unit)) {
      throw fail(`blood_pressure.unit: quantity "${bp[key]}" does not take unit "${r.bp_unit}"`);
    }
  }
  r.bp_form_quantity = text(bp.form_quantity, 'blood_pressure.form_quantity');
  r.hour_words = texts(d.hour_words, '"hour_words"');
  r.not_after_bare_number = texts(d.not_after_bare_number, '"not_after_bare_number"');

  for (const [cid, c0] of Object.entries(obj(d.asset_classes, '"asset_classes"'))) {
    const c = obj(c0, `asset_classes.${cid}`);
    r.asset_classes.set(cid, [text(c.label, `asset_classes.${cid}.label`), texts(c.keywords, `asset_classes.${cid}.keywords`)]);
  }
  for (const [aid, a0] of Object.entries(obj(d.assets, '"assets"'))) {
    const a = obj(a0, `assets.${aid}`);
    if (typeof a.class !== 'string' || !r.asset_classes.has(a.class)) {
      throw fail(`assets.${aid}: unknown asset class "${show(a.class)}"`);
    }
    r.assets.set(aid, { id: aid, cls: a.class, label: text(a.label, `assets.${aid}.label`), aliases: texts(a.aliases, `assets.${aid}.aliases`) });
  }

  /** @type {Set<string>} */
  const seen = new Set();
  if (!Array.isArray(d.limits)) throw fail('"limits" must be a list');
  d.limits.forEach((lim, i) => r.limits.push(checkLimit(r, i, obj(lim, `limits[${i}]`), seen)));
  const ids = new Set(r.limits.map((l) => l.id));
  r.limits.forEach((lim, i) => {
    for (const rid of lim.replaces) {
      if (!ids.has(rid)) throw fail(`limits[${i}] (${lim.id}): replaces unknown limit "${rid}"`);
    }
  });

  if (!Array.isArray(d.phrases)) throw fail('"phrases" must be a list');
  d.phrases.forEach((p, i) => r.phrases.push(checkPhraseRule(i, obj(p, `phrases[${i}]`), seen)));

  const n = obj(d.negation, '"negation"');
  if (typeof n.window !== 'number' || !Number.isInteger(n.window) || n.window < 1) {
    throw fail('negation.window must be a whole number from 1');
  }
  if (typeof n.break_chars !== 'string') throw fail('negation.break_chars must be a string');
  r.negation = {
    before: texts(n.before, 'negation.before'), after: texts(n.after, 'negation.after'), window: n.window,
    break_chars: n.break_chars, break_words: texts(n.break_words, 'negation.break_words'),
  };

  const lists = obj(d.allow_lists, '"allow_lists"');
  for (const name of ALLOW_LISTS) r.allow_lists.set(name, texts(lists[name], `allow_lists.${name}`));
  r.diagnosis_phrases = texts(d.diagnosis_phrases, '"diagnosis_phrases"');
  const textsObj = obj(d.texts, '"texts"');
  for (const [name, allowed] of Object.entries(TEXTS)) {
    const value = text(textsObj[name], `texts.${name}`);
    checkTemplate(value, allowed, `texts.${name}`);
    r.texts[name] = value;
  }
}

/** @param {Rules} r @param {string} qid @param {Record<string, any>} q @returns {Quantity} */
function checkQuantity(r, qid, q) {
  const where = `quantities.${qid}`;
  const label = text(q.label, `${where}.label`);
  if (!DOMAINS.includes(q.domain)) throw fail(`${where}.domain must be "clinical" or "equipment"`);
  /** @type {Map<string, [number, number]>} */
  const units = new Map();
  for (const [uid, conv] of Object.entries(obj(q.units, `${where}.units`))) {
    if (!r.units.has(uid)) throw fail(`${where}.units: unknown unit "${uid}" (not in "units")`);
    let factor;
    let offset;
    if (isObject(conv)) {
      factor = num(conv.factor, `${where}.units.${uid}.factor`);
      offset = num('offset' in conv ? conv.offset : 0, `${where}.units.${uid}.offset`);
    } else {
      factor = num(conv, `${where}.units.${uid}`);
      offset = 0;
    }
    if (factor <= 0) throw fail(`${where}.units.${uid}: the factor must be above 0`);
    units.set(uid, [factor, offset]);
  }
  const canonical = q.canonical_unit;
  const conv = typeof canonical === 'string' ? units.get(canonical) : undefined;
  if (!conv || conv[0] !== 1 || conv[1] !== 0) {
    throw fail(`${where}: canonical_unit "${show(canonical)}" must be one of its units, with factor 1 and offset 0`);
  }
  const dflt = q.default_unit ?? null;
  if (dflt !== null && !units.has(dflt)) throw fail(`${where}.default_unit: "${show(dflt)}" is not one of its units`);
  /** @type {Array<[number | null, string]>} */
  const bare = [];
  const entries = 'bare_units' in q ? q.bare_units : [];
  for (const entry of Array.isArray(entries) ? entries : [null]) {
    if (!Array.isArray(entry) || entry.length !== 2 || !units.has(entry[1]) || (entry[0] !== null && !isNumber(entry[0]))) {
      throw fail(`${where}.bare_units: each entry must be [max or null, one of its units]`);
    }
    bare.push([entry[0], entry[1]]);
  }
  const p = q.plausible;
  if (!Array.isArray(p) || p.length !== 2 || !p.every(isNumber) || !(p[0] < p[1])) {
    throw fail(`${where}.plausible must be [low, high] with low < high`);
  }
  return {
    id: qid, label, domain: q.domain, canonical_unit: canonical, units, default_unit: dflt, bare_units: bare,
    plausible: [p[0], p[1]], words: texts(q.words, `${where}.words`), unit_words: optTexts(q, 'unit_words', where),
  };
}

/** @param {Rules} r @param {number} i @param {Record<string, any>} d @param {Set<string>} seen @returns {Limit} */
function checkLimit(r, i, d, seen) {
  const lid = text(d.id, `limits[${i}].id`);
  const where = `limits[${i}] (${lid})`;
  if (seen.has(lid)) throw fail(`duplicate id "${lid}"`);
  seen.add(lid);
  const qid = d.quantity;
  const q = typeof qid === 'string' ? r.quantities.get(qid) : undefined;
  if (!q) throw fail(`${where}: unknown quantity "${show(qid)}"`);
  const op = d.op;
  if (typeof op !== 'string' || !(op in OPS)) throw fail(`${where}: op must be one of ${Object.keys(OPS).join(', ')}`);
  const values = obj(d.limits, `${where}.limits`);
  if (!Object.keys(values).length) throw fail(`${where}.limits must name at least one unit`);
  for (const [uid, v] of Object.entries(values)) {
    if (!q.units.has(uid)) throw fail(`${where}: unit "${uid}" is not one ${qid} takes (${[...q.units.keys()].join(', ')})`);
    if (op === 'outside') {
      if (!Array.isArray(v) || v.length !== 2 || !v.every(isNumber) || !(v[0] < v[1])) {
        throw fail(`${where}: limits.${uid} must be [low, high] with low < high`);
      }
    } else {
      num(v, `${where}: limits.${uid}`);
    }
  }
  const cls = d.asset_class ?? null;
  const asset = d.asset ?? null;
  if (cls !== null && !r.asset_classes.has(cls)) throw fail(`${where}: unknown asset class "${show(cls)}"`);
  if (asset !== null && !r.assets.has(asset)) throw fail(`${where}: unknown asset "${show(asset)}"`);
  const message = 'message' in d ? d.message : '{label} {value} {op} {limit}';
  if (typeof message !== 'string') throw fail(`${where}.message must be a string`);
  checkTemplate(message, LIMIT_PLACEHOLDERS, where);
  return {
    id: lid, quantity: qid, op, limits: new Map(Object.entries(values)), kinds: kindsOf(d, where), asset_class: cls,
    asset, replaces: optTexts(d, 'replaces', where), message,
  };
}

/** @param {number} i @param {Record<string, any>} d @param {Set<string>} seen @returns {PhraseRule} */
function checkPhraseRule(i, d, seen) {
  const pid = text(d.id, `phrases[${i}].id`);
  const where = `phrases[${i}] (${pid})`;
  if (seen.has(pid)) throw fail(`duplicate id "${pid}"`);
  seen.add(pid);
  const label = text(d.label, `${where}.label`);
  const phrases = texts(d.phrases, `${where}.phrases`);
  const excepts = optTexts(d, 'except', where);
  const message = 'message' in d ? d.message : 'danger sign: {label}';
  if (typeof message !== 'string') throw fail(`${where}.message must be a string`);
  checkTemplate(message, PHRASE_PLACEHOLDERS, where);
  return {
    id: pid, label, kinds: kindsOf(d, where), phrases, excepts, message, pattern: phraseRegex(phrases),
    exceptPattern: excepts.length ? phraseRegex(excepts) : null,
  };
}

/**
 * Parsed JSON and the sha256 of its bytes (of the UTF-8 text for a string; null for an already parsed object).
 * @param {unknown} raw  bytes (Uint8Array, ArrayBuffer), JSON text, or the parsed object
 * @param {string} what
 * @returns {[unknown, string | null]}
 */
function parseInput(raw, what) {
  let bytes = null;
  if (raw instanceof ArrayBuffer) bytes = new Uint8Array(raw);
  else if (raw instanceof Uint8Array) bytes = raw;
  else if (typeof raw === 'string') bytes = new TextEncoder().encode(raw);
  if (bytes === null) return [structuredClone(raw), null];
  try {
    const textValue = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return [JSON.parse(textValue), sha256Hex(bytes)];
  } catch {
    throw new RulesError(`${what}: not valid JSON`);
  }
}

/**
 * A rules file from its bytes, its JSON text or its parsed object. `.sha256` is the hash of the bytes given (of the
 * UTF-8 text for a string), null for an object.
 * @param {unknown} input
 * @returns {Rules}
 */
export function loadRules(input) {
  const [data, sha] = parseInput(input, 'rules');
  return new Rules(checkHeader(data, 'rules', FORMAT, VERSION), sha);
}

/**
 * @typedef {object} Task
 * @property {string} kind
 * @property {string} title
 * @property {string} system
 * @property {number} max_tokens
 * @property {string} decisive
 * @property {string[]} escalate_values
 * @property {Record<string, any>} schema
 */

export class Tasks {
  /** @param {Record<string, any>} data */
  constructor(data) {
    this.data = data;
    if (!isObject(data.tasks)) throw new RulesError('tasks: "tasks" must be an object');
    /** @type {Map<string, Task>} */
    this.tasks = new Map();
    for (const kind of KINDS) {
      const t = data.tasks[kind];
      if (!isObject(t)) throw new RulesError(`tasks: task "${kind}" is missing`);
      this.tasks.set(kind, checkTask(kind, t));
    }
  }

  /** @param {unknown} kind @returns {Task} */
  task(kind) {
    const t = typeof kind === 'string' ? this.tasks.get(kind) : undefined;
    if (!t) throw new RulesError(`unknown task kind "${show(kind)}": use one of ${KINDS.join(', ')}`);
    return t;
  }
}

/** @param {string} kind @param {Record<string, any>} t @returns {Task} */
function checkTask(kind, t) {
  const where = `tasks.${kind}`;
  /** @param {string} key @returns {string} */
  const field = (key) => {
    const v = t[key];
    if (typeof v !== 'string' || !v) throw new RulesError(`tasks: ${where}.${key} must be a non-empty string`);
    return v;
  };
  const mt = t.max_tokens;
  if (typeof mt !== 'number' || !Number.isInteger(mt) || mt < 1 || mt > 4096) {
    throw new RulesError(`tasks: ${where}.max_tokens must be a whole number from 1 to 4096`);
  }
  const schema = t.schema;
  if (!isObject(schema) || schema.type !== 'object' || !isObject(schema.properties)) {
    throw new RulesError(`tasks: ${where}.schema must be a JSON Schema of type object with properties`);
  }
  const decisive = field('decisive');
  if (!(decisive in schema.properties) || !(schema.required ?? []).includes(decisive)) {
    throw new RulesError(`tasks: ${where}.decisive "${decisive}" must be a required property of the schema`);
  }
  const values = t.escalate_values;
  if (!Array.isArray(values) || !values.every((v) => typeof v === 'string' && v)) {
    throw new RulesError(`tasks: ${where}.escalate_values must be a list of strings`);
  }
  return { kind, title: field('title'), system: field('system'), max_tokens: mt, decisive, escalate_values: [...values], schema };
}

/**
 * The tasks file, from its bytes, JSON text or parsed object.
 * @param {unknown} input
 * @returns {Tasks}
 */
export function loadTasks(input) {
  const [data] = parseInput(input, 'tasks');
  return new Tasks(checkHeader(data, 'tasks', TASKS_FORMAT, TASKS_VERSION));
}
