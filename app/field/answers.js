// answers.js: the request that asks the model for a task's answer, and the review that turns its completion into a
// card; the same code as app/field/answers.py. JSON Schema validation uses @cfworker/json-schema, which interprets
// schemas (ajv compiles them with new Function, which the page's CSP forbids). The page resolves the bare
// specifier through its import map (fieldllm build vendors the package); Node through node_modules.

import { Validator } from '@cfworker/json-schema';

import { evaluate } from './evaluate.js';
import { fmtNum, fromCanonical, numbersIn, unsupportedNumbers } from './numbers.js';
import { parseReadings } from './readings.js';
import { RulesError, isObject, show } from './rules.js';

/** @typedef {import('./rules.js').Rules} Rules */
/** @typedef {import('./rules.js').Tasks} Tasks */
/** @typedef {import('./readings.js').Reading} Reading */
/** @typedef {import('./evaluate.js').Fired} Fired */
/**
 * @typedef {object} Completion
 * @property {string | null} [content]
 * @property {string | null} [finish_reason]  "stop" when the answer ended by itself
 * @property {number | null} [decisive_probability]  the engine's probability of the decisive field's value
 */
/**
 * @typedef {object} Card
 * @property {string} kind
 * @property {'escalate' | 'implausible' | 'invalid_answer' | 'in_range' | 'no_readings'} status
 * @property {boolean} escalate
 * @property {Fired[]} fired
 * @property {Array<{message: string, reading: Reading}>} implausible
 * @property {Reading[]} readings
 * @property {import('./readings.js').AssetRef | null} asset
 * @property {Record<string, any> | null} answer  the validated answer; null unless valid
 * @property {boolean} valid
 * @property {string[]} problems
 * @property {boolean} cut
 * @property {string | null} safe_text
 * @property {string[]} unsupported_numbers
 * @property {'high' | 'low' | null} confidence
 * @property {boolean} model_suggests_escalation
 * @property {string[]} notices
 * @property {string} rules_version
 */

export const MAX_PROBLEMS = 10;
export const MAX_DEPTH = 64;

/** @param {unknown} node @param {Rules} rules @returns {any} */
function inject(node, rules) {
  if (Array.isArray(node)) return node.map((x) => inject(x, rules));
  if (!isObject(node)) return node;
  /** @type {Record<string, any>} */
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'enum_from') {
      const list = typeof v === 'string' ? rules.allow_lists.get(v) : undefined;
      if (!list) throw new RulesError(`tasks: unknown allow-list "${show(v)}" (the rules have ${[...rules.allow_lists.keys()].join(', ')})`);
      out.enum = [...list];
    } else {
      out[k] = inject(v, rules);
    }
  }
  return out;
}

/**
 * The task's answer schema, with the rules' allow-lists in place of its "enum_from" references.
 * @param {string} kind @param {Rules} rules @param {Tasks} tasks
 * @returns {Record<string, any>}
 */
export function taskSchema(kind, rules, tasks) {
  return inject(tasks.task(kind).schema, rules);
}

/** @param {string} text */
const strip = (text) => text.replace(/^[ \t\n\r]+|[ \t\n\r]+$/g, '');

/**
 * An OpenAI chat request body for the task (see answers.py).
 * @param {string} kind @param {string} text @param {Reading[]} formReadings @param {Rules} rules @param {Tasks} tasks
 * @param {string | null} [asset]
 */
export function taskRequest(kind, text, formReadings, rules, tasks, asset = null) {
  const task = tasks.task(kind);
  const lines = [];
  if (asset) lines.push(`Asset: ${strip(asset)}`);
  if (formReadings.length) {
    lines.push('Readings:');
    for (const r of formReadings) {
      const q = rules.quantity(r.quantity);
      const unit = rules.units.get(r.unit)?.display ?? '';
      lines.push(`- ${q.label}: ${fmtNum(r.value)}` + (unit ? ` ${unit}` : ''));
    }
  }
  const notes = strip(text);
  if (notes) lines.push(`Notes: ${notes}`);
  if (!lines.length) lines.push('Notes: (none)');
  return {
    messages: [{ role: 'system', content: task.system }, { role: 'user', content: lines.join('\n') }],
    response_format: { type: 'json_schema', json_schema: { name: kind, schema: taskSchema(kind, rules, tasks), strict: true } },
    temperature: 0,
    max_tokens: task.max_tokens,
    metadata: { fieldllm_task: kind, fieldllm_rules_version: rules.rules_version },
  };
}

// ---- validation ----

/** @param {unknown} v */
function jsonType(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'string') return 'string';
  return Array.isArray(v) ? 'array' : 'object';
}

/** @param {string} t @param {unknown} v */
function typeOk(t, v) {
  if (t === 'integer') return typeof v === 'number' && Number.isInteger(v);
  return jsonType(v) === t;
}

/** @param {unknown} a @param {unknown} b */
function same(a, b) {
  const ta = jsonType(a);
  return ta === jsonType(b) && ['string', 'number', 'boolean', 'null'].includes(ta) && a === b;
}

/**
 * A property name from a model's answer as a message shows it (letters, digits, '_', ' ', '-'; '?' else; 40 at most).
 * @param {string} name
 */
export function safeName(name) {
  const chars = Array.from(name, (c) => (/^[A-Za-z0-9_ -]$/.test(c) ? c : '?'));
  return chars.slice(0, 40).join('') + (chars.length > 40 ? '…' : '');
}

/** @param {Record<string, any>} schema @param {unknown} v @param {string} path @param {string[]} out */
function walk(schema, v, path, out) {
  const t = schema.type;
  if (typeof t === 'string' && !typeOk(t, v)) {
    out.push(`${path}: expected ${t}, got ${jsonType(v)}`);
    return;
  }
  if ('const' in schema && !same(v, schema.const)) out.push(`${path}: not the allowed value`);
  if ('enum' in schema && !schema.enum.some((/** @type {unknown} */ e) => same(v, e))) out.push(`${path}: not one of the allowed values`);
  if (typeof v === 'string') {
    const n = Array.from(v).length;
    if ('minLength' in schema && n < schema.minLength) out.push(`${path}: ${n} characters, fewer than ${show(schema.minLength)}`);
    if ('maxLength' in schema && n > schema.maxLength) out.push(`${path}: ${n} characters, more than ${show(schema.maxLength)}`);
  } else if (Array.isArray(v)) {
    if ('minItems' in schema && v.length < schema.minItems) out.push(`${path}: ${v.length} items, fewer than ${show(schema.minItems)}`);
    if ('maxItems' in schema && v.length > schema.maxItems) out.push(`${path}: ${v.length} items, more than ${show(schema.maxItems)}`);
    if (isObject(schema.items)) v.forEach((x, i) => walk(schema.items, x, `${path}[${i}]`, out));
  } else if (isObject(v)) {
    const props = isObject(schema.properties) ? schema.properties : {};
    for (const name of schema.required ?? []) {
      if (!Object.hasOwn(v, name)) out.push(`${path}: missing "${name}"`);
    }
    if (schema.additionalProperties === false) {
      const extras = [...new Set(Object.keys(v).filter((k) => !Object.hasOwn(props, k)).map(safeName))].sort();
      for (const name of extras) out.push(`${path}: unexpected "${name}"`);
    }
    for (const [name, sub] of Object.entries(props)) {
      if (Object.hasOwn(v, name) && isObject(sub)) walk(sub, v[name], `${path}.${name}`, out);
    }
  }
}

/**
 * Why value does not match schema, one line each (at most MAX_PROBLEMS), [] if it does (see answers.py).
 * @param {Record<string, any>} schema @param {unknown} value
 * @returns {string[]}
 */
export function schemaProblems(schema, value) {
  /** @type {string[]} */
  const out = [];
  walk(schema, value, 'answer', out);
  if (!out.length && !new Validator(/** @type {any} */ (schema), '2020-12', false).validate(/** @type {any} */ (value)).valid) {
    out.push('answer: does not match the schema');
  }
  return out.slice(0, MAX_PROBLEMS);
}

/** The deepest nesting of [ and { outside strings. @param {string} text */
function depth(text) {
  let d = 0;
  let deepest = 0;
  let inString = false;
  let escaped = false;
  for (const c of text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '[' || c === '{') {
      d++;
      deepest = Math.max(deepest, d);
    } else if (c === ']' || c === '}') {
      d--;
    }
  }
  return deepest;
}

/**
 * [value, null] or [null, why it is not JSON].
 * @param {string} content
 * @returns {[unknown, string | null]}
 */
export function parseAnswer(content) {
  if (/^[ \t\n\r]*$/.test(content)) return [null, 'the answer is empty'];
  if (depth(content) > MAX_DEPTH) return [null, 'the answer is nested too deeply'];
  try {
    return [JSON.parse(content), null];
  } catch {
    return [null, 'the answer is not valid JSON'];
  }
}

/**
 * Diagnosis words (rules' diagnosis_phrases, not negated) in a screening answer's text.
 * @param {Record<string, any>} schema @param {Record<string, any>} answer @param {Rules} rules
 */
export function diagnosisProblems(schema, answer, rules) {
  /** @type {string[]} */
  const texts = [];
  for (const name of Object.keys(schema.properties)) {
    const v = answer[name];
    if (typeof v === 'string') texts.push(v);
    else if (Array.isArray(v)) texts.push(...v.filter((x) => typeof x === 'string'));
  }
  const text = texts.join('\n');
  const c = rules.compiled;
  const out = [];
  for (const [phrase, pattern] of c.diagnosis) {
    for (const m of text.matchAll(pattern)) {
      const start = m.index ?? 0;
      if (!c.negated(text, start, start + m[0].length)) {
        out.push(`screening answers must not diagnose: "${phrase}"`);
        break;
      }
    }
  }
  return out;
}

/** @param {Reading[]} readings @param {Rules} rules */
function knownNumbers(readings, rules) {
  /** @type {number[]} */
  const out = [];
  for (const r of readings) {
    const q = rules.quantity(r.quantity);
    out.push(r.value, r.canonical_value);
    for (const u of q.units.keys()) out.push(fromCanonical(q, r.canonical_value, u));
  }
  for (const values of rules.allow_lists.values()) {
    for (const v of values) out.push(...numbersIn(v).map(([, n]) => n));
  }
  return out;
}

/**
 * The card for one completion of a task. `readings` are the form's (readingsFromForm); the text's are parsed here.
 * @param {string} kind @param {string} inputText @param {Reading[]} readings @param {Completion} completion
 * @param {Rules} rules @param {Tasks} tasks @param {string | null} [asset]
 * @returns {Card}
 */
export function review(kind, inputText, readings, completion, rules, tasks, asset = null) {
  const task = tasks.task(kind);
  const allReadings = [...readings, ...parseReadings(inputText, rules, kind)];
  const verdict = evaluate(kind, allReadings, inputText, rules, asset);
  const content = typeof completion.content === 'string' ? completion.content : '';
  const finish = completion.finish_reason;
  const cut = finish !== 'stop';
  /** @type {string[]} */
  const problems = [];
  if (cut) problems.push(`the answer was cut off (finish_reason "${safeName(show(finish))}")`);
  const [value, why] = parseAnswer(content);
  /** @type {Record<string, any> | null} */
  let answer = null;
  if (why !== null) {
    problems.push(why);
  } else {
    const schema = taskSchema(kind, rules, tasks);
    let found = schemaProblems(schema, value);
    if (!found.length && kind === 'screening') found = diagnosisProblems(schema, /** @type {Record<string, any>} */ (value), rules);
    problems.push(...found);
    if (!problems.length) answer = /** @type {Record<string, any>} */ (value);
  }
  const valid = answer !== null;
  const p = completion.decisive_probability;
  const hasP = typeof p === 'number';
  /** @type {'high' | 'low' | null} */
  const confidence = !valid || !hasP ? null : p >= rules.confidence_threshold ? 'high' : 'low';
  const suggests = answer !== null && task.escalate_values.includes(answer[task.decisive]);
  const escalate = verdict.status === 'escalate' || suggests;
  const status = escalate ? 'escalate' : verdict.status === 'implausible' ? 'implausible' : !valid ? 'invalid_answer' : verdict.status;
  const reasons = verdict.fired.map((f) => f.message).join('; ');
  let safeText = null;
  if (!valid) {
    const name = escalate ? (cut ? 'escalate_cut' : 'escalate_invalid') : cut ? 'cut' : 'invalid';
    safeText = rules.texts[name].replaceAll('{reasons}', reasons);
  }
  const notices = [];
  if (verdict.implausible.length) {
    notices.push(rules.texts.remeasure.replaceAll('{reasons}', verdict.implausible.map((i) => i.message).join('; ')));
  }
  if (confidence === 'low') notices.push(rules.texts.low_confidence);
  return {
    kind,
    status,
    escalate,
    fired: verdict.fired,
    implausible: verdict.implausible,
    readings: verdict.readings,
    asset: verdict.asset,
    answer,
    valid,
    problems,
    cut,
    safe_text: safeText,
    unsupported_numbers: unsupportedNumbers(content, inputText, knownNumbers(verdict.readings, rules)),
    confidence,
    model_suggests_escalation: suggests,
    notices,
    rules_version: rules.rules_version,
  };
}
