// evaluate.js: the verdict on readings and text (which rules fire, which readings are implausible); the same code
// as app/field/evaluate.py. escalate wins over implausible; an implausible reading is checked against no limit and
// never counts as in range.

import { cpIndex, findPhrase, key } from './patterns.js';
import { fmtQuantity, fmtRange, fromCanonical, toCanonical } from './numbers.js';
import { detectAsset } from './readings.js';
import { KINDS, OPS, ReadingError, RulesError, show } from './rules.js';

/** @typedef {import('./rules.js').Rules} Rules */
/** @typedef {import('./rules.js').Limit} Limit */
/** @typedef {import('./readings.js').Reading} Reading */
/** @typedef {import('./readings.js').AssetRef} AssetRef */
/**
 * @typedef {object} Fired
 * @property {string} rule
 * @property {string} message
 * @property {Reading | null} reading
 * @property {{text: string, start: number, end: number} | null} phrase
 */
/**
 * @typedef {object} Verdict
 * @property {'escalate' | 'implausible' | 'in_range' | 'no_readings'} status
 * @property {Fired[]} fired
 * @property {Array<{message: string, reading: Reading}>} implausible
 * @property {Reading[]} readings
 * @property {AssetRef | null} asset
 */

/** @param {string} template @param {Record<string, string>} values */
export function fill(template, values) {
  let out = template;
  for (const [name, value] of Object.entries(values)) out = out.replaceAll(`{${name}}`, value);
  return out;
}

/**
 * The asset a form names (an asset id, alias or class, or text naming one), else for a fault the one the text names.
 * @param {string} kind @param {string} text @param {Rules} rules @param {string | null} [asset]
 * @returns {AssetRef | null}
 */
export function resolveAsset(kind, text, rules, asset = null) {
  if (asset !== null && asset !== undefined) {
    for (const a of rules.assets.values()) {
      if (key(asset) === key(a.id)) return { id: a.id, class: a.cls, label: a.label };
    }
    const cls = rules.asset_classes.get(asset);
    if (cls) return { id: null, class: asset, label: cls[0] };
    const found = detectAsset(asset, rules);
    if (found) return found;
  }
  return kind === 'fault' ? detectAsset(text, rules) : null;
}

/**
 * A reading with its canonical value recomputed from value and unit.
 * @param {Reading} r @param {Rules} rules
 * @returns {Reading}
 */
export function normalizeReading(r, rules) {
  const q = rules.quantity(r.quantity);
  if (typeof r.unit !== 'string' || !q.units.has(r.unit)) {
    throw new ReadingError(`unknown unit "${show(r.unit)}" for ${q.id}: use one of ${[...q.units.keys()].join(', ')}`);
  }
  if (typeof r.value !== 'number') throw new ReadingError(`${q.id}: "${show(r.value)}" is not a number`);
  return { ...r, canonical_value: toCanonical(q, r.value, r.unit), canonical_unit: q.canonical_unit };
}

/** @param {Limit} lim @param {string} kind @param {AssetRef | null} asset */
function applies(lim, kind, asset) {
  if (!lim.kinds.includes(kind)) return false;
  if (lim.asset !== null) return asset !== null && asset.id === lim.asset;
  if (lim.asset_class !== null) return asset !== null && asset.class === lim.asset_class;
  return true;
}

/**
 * The fired message, or null.
 * @param {Limit} lim @param {Reading} r @param {Rules} rules @param {AssetRef | null} asset
 */
function check(lim, r, rules, asset) {
  const q = rules.quantity(lim.quantity);
  const unit = r.unit;
  let x;
  let at;
  if (lim.limits.has(unit)) {
    x = r.value;
    at = unit;
  } else {
    at = /** @type {string} */ (lim.limits.keys().next().value);
    x = fromCanonical(q, r.canonical_value, at);
  }
  const limit = lim.limits.get(at);
  const u = /** @type {import('./rules.js').Unit} */ (rules.units.get(at));
  let fires;
  let limitText;
  if (lim.op === 'outside') {
    fires = x < limit[0] || x > limit[1];
    limitText = fmtRange(limit[0], limit[1], u);
  } else {
    fires = { '<': x < limit, '<=': x <= limit, '>': x > limit, '>=': x >= limit }[lim.op];
    limitText = fmtQuantity(limit, u);
  }
  if (!fires) return null;
  let value = fmtQuantity(r.value, /** @type {import('./rules.js').Unit} */ (rules.units.get(unit)));
  if (at !== unit) value += ` (${fmtQuantity(x, u)})`;
  return fill(lim.message, { label: q.label, value, op: OPS[lim.op], limit: limitText, asset: asset && asset.id ? asset.id : '' });
}

/** @param {Reading} r @param {Rules} rules */
export function implausibleMessage(r, rules) {
  const q = rules.quantity(r.quantity);
  const [low, high] = q.plausible;
  const c = r.canonical_value;
  if (low <= c && c <= high) return null;
  const canon = /** @type {import('./rules.js').Unit} */ (rules.units.get(q.canonical_unit));
  let value = fmtQuantity(r.value, /** @type {import('./rules.js').Unit} */ (rules.units.get(r.unit)));
  if (r.unit !== q.canonical_unit) value += ` (${fmtQuantity(c, canon)})`;
  return fill(rules.texts.implausible, { label: q.label, value, range: fmtRange(low, high, canon) });
}

/**
 * {status, fired, implausible, readings, asset} for a task's readings and text.
 * @param {string} kind @param {Reading[]} readings @param {string} text @param {Rules} rules @param {string | null} [asset]
 * @returns {Verdict}
 */
export function evaluate(kind, readings, text, rules, asset = null) {
  if (!KINDS.includes(kind)) throw new RulesError(`unknown task kind "${show(kind)}": use one of ${KINDS.join(', ')}`);
  const where = resolveAsset(kind, text, rules, asset);
  let limits = rules.limits.filter((lim) => applies(lim, kind, where));
  const replaced = new Set(limits.flatMap((lim) => lim.replaces));
  limits = limits.filter((lim) => !replaced.has(lim.id));
  const normal = readings.map((r) => normalizeReading(r, rules));
  /** @type {Fired[]} */
  const fired = [];
  /** @type {Array<{message: string, reading: Reading}>} */
  const implausible = [];
  for (const r of normal) {
    const why = implausibleMessage(r, rules);
    if (why !== null) {
      implausible.push({ message: why, reading: r });
      continue;
    }
    for (const lim of limits) {
      if (lim.quantity !== r.quantity) continue;
      const msg = check(lim, r, rules, where);
      if (msg !== null) fired.push({ rule: lim.id, message: msg, reading: r, phrase: null });
    }
  }
  const cp = cpIndex(text);
  for (const p of rules.phrases) {
    if (!p.kinds.includes(kind)) continue;
    const span = findPhrase(p.pattern, p.exceptPattern, rules.compiled, text);
    if (span !== null) {
      const matched = text.slice(span.start, span.end);
      fired.push({
        rule: p.id, message: fill(p.message, { label: p.label, text: matched }), reading: null,
        phrase: { text: matched, start: cp(span.start), end: cp(span.end) },
      });
    }
  }
  const status = fired.length ? 'escalate' : implausible.length ? 'implausible' : normal.length ? 'in_range' : 'no_readings';
  return { status, fired, implausible, readings: normal, asset: where };
}
