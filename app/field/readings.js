// readings.js: readings from free text (a deterministic parser) and from the screens' form fields; the same code
// as app/field/readings.py. A reading is {quantity, value, unit, canonical_value, canonical_unit, text, start, end,
// source}: start/end in code points, null for a form field.

import { NUMBER, cpIndex, firstMatch, key, phraseRegex } from './patterns.js';
import { fmtQuantity, parseNumber, toCanonical } from './numbers.js';
import { DOMAINS, DOMAIN_OF_KIND, KINDS, ReadingError, RulesError, show } from './rules.js';

/** @typedef {import('./rules.js').Rules} Rules */
/** @typedef {import('./rules.js').Quantity} Quantity */
/**
 * @typedef {object} Reading
 * @property {string} quantity
 * @property {number} value
 * @property {string} unit
 * @property {number} canonical_value
 * @property {string} canonical_unit
 * @property {string} text
 * @property {number | null} start
 * @property {number | null} end
 * @property {string} source  "text" or "form"
 */
/** @typedef {{id: string | null, class: string, label: string}} AssetRef */

const FORM_NUMBER = new RegExp(`^[ \\t]*(-?)(${NUMBER})[ \\t]*$`, 'u');
const FORM_BP = /^[ \t]*([0-9]{2,3})[ \t]*\/[ \t]*([0-9]{2,3})[ \t]*$/u;

/**
 * @param {Quantity} q @param {number} value @param {string} unit @param {string} text
 * @param {number | null} start @param {number | null} end @param {string} source
 * @returns {Reading}
 */
export function makeReading(q, value, unit, text, start, end, source) {
  return { quantity: q.id, value, unit, canonical_value: toCanonical(q, value, unit), canonical_unit: q.canonical_unit, text, start, end, source };
}

/**
 * The asset a text names: a named asset (any alias) wherever it appears, else the asset class whose keyword comes
 * first; {id, class, label} (id null for a class), or null.
 * @param {string} text @param {Rules} rules
 * @returns {AssetRef | null}
 */
export function detectAsset(text, rules) {
  const c = rules.compiled;
  let m = c.asset ? firstMatch(c.asset, text) : null;
  if (m) {
    const asset = /** @type {import('./rules.js').Asset} */ (rules.assets.get(/** @type {string} */ (c.assetByKey.get(key(m[0])))));
    return { id: asset.id, class: asset.cls, label: asset.label };
  }
  m = c.assetClass ? firstMatch(c.assetClass, text) : null;
  if (m) {
    const cid = /** @type {string} */ (c.classByKey.get(key(m[0])));
    return { id: null, class: cid, label: /** @type {[string, string[]]} */ (rules.asset_classes.get(cid))[0] };
  }
  return null;
}

/**
 * Which quantities win where a word or unit could be either (see readings.py).
 * @param {string | null | undefined} kind @param {string} text @param {Rules} rules
 */
export function domainFor(kind, text, rules) {
  if (kind === null || kind === undefined) return detectAsset(text, rules) ? 'equipment' : 'clinical';
  if (!KINDS.includes(kind)) throw new RulesError(`unknown task kind "${show(kind)}": use one of ${KINDS.join(', ')}`);
  return DOMAIN_OF_KIND[kind];
}

/** @typedef {{start: number, end: number, readings: Reading[], hourWord: boolean}} Candidate  UTF-16 offsets */

/**
 * The quantity a word names: among those that take `unit` (if given), the domain's first, else the first.
 * @param {Rules} rules @param {string} word @param {string} domain @param {string | null} [unit]
 * @returns {[Quantity, boolean] | null}
 */
function pick(rules, word, domain, unit = null) {
  /** @type {Array<[Quantity, boolean]>} */
  let entries = (rules.compiled.words.get(key(word)) ?? []).map(([q, needs]) => [rules.quantity(q), needs]);
  if (unit !== null) entries = entries.filter((e) => e[0].units.has(unit));
  const ours = entries.filter((e) => e[0].domain === domain);
  return (ours.length ? ours : entries)[0] ?? null;
}

/** @param {Rules} rules @param {string} unit @param {string} domain */
function unitDefault(rules, unit, domain) {
  const other = domain === DOMAINS[0] ? DOMAINS[1] : DOMAINS[0];
  for (const d of [domain, other]) {
    const qid = rules.unit_defaults.get(d)?.get(unit);
    if (qid) return rules.quantity(qid);
  }
  return null;
}

/** @param {string | undefined} sign @param {string} number */
const valueOf = (sign, number) => (sign ? -parseNumber(number) : parseNumber(number));

/** @param {RegExpExecArray | RegExpMatchArray} m @param {number} i */
const startOf = (m, i) => /** @type {[number, number][]} */ (m.indices)[i][0];
/** @param {RegExpExecArray | RegExpMatchArray} m @param {number} i */
const endOf = (m, i) => /** @type {[number, number][]} */ (m.indices)[i][1];

/**
 * @param {Rules} rules @param {string} text @param {RegExpMatchArray} m @param {string} domain
 * @param {(i: number) => number} cp
 * @returns {Candidate | null}
 */
function wordCandidate(rules, text, m, domain, cp) {
  const picked = pick(rules, m[1], domain);
  if (picked === null) return null;
  const [q, needsUnit] = picked;
  const value = valueOf(m[2], m[3]);
  let end = endOf(m, 3);
  let unit = m[4] ? rules.resolveUnit(m[4]) : null;
  if (unit !== null) {
    if (!q.units.has(unit)) return null;
    end = endOf(m, 4);
  } else {
    const next = text.slice(end, end + 1);
    const blocker = rules.compiled.notAReading;
    blocker.lastIndex = end;
    if (needsUnit || /^[A-Za-z/]$/.test(next) || blocker.test(text)) return null;
    unit = q.default_unit;
    if (unit === null) unit = q.bare_units.find(([mx]) => mx === null || value <= mx)?.[1] ?? null;
    if (unit === null) return null;
  }
  const start = m.index ?? 0;
  const reading = makeReading(q, value, unit, text.slice(start, end), cp(start), cp(end), 'text');
  return { start, end, readings: [reading], hourWord: rules.compiled.hourWords.has(key(m[1])) };
}

/**
 * @param {Rules} rules @param {string} text @param {RegExpMatchArray} m @param {string} domain
 * @param {(i: number) => number} cp
 * @returns {Candidate | null}
 */
function unitCandidate(rules, text, m, domain, cp) {
  const unit = rules.resolveUnit(m[3]);
  if (unit === null) return null;
  const value = valueOf(m[1], m[2]);
  const start = m[1] ? startOf(m, 1) : startOf(m, 2);
  if (m[4]) {
    const picked = pick(rules, m[4], domain, unit);
    if (picked !== null) {
      const end = endOf(m, 4);
      return { start, end, readings: [makeReading(picked[0], value, unit, text.slice(start, end), cp(start), cp(end), 'text')], hourWord: false };
    }
  }
  const q = unitDefault(rules, unit, domain) ?? namedBefore(rules, text, start, unit, domain);
  if (q === null) return null;
  const end = endOf(m, 3);
  return { start, end, readings: [makeReading(q, value, unit, text.slice(start, end), cp(start), cp(end), 'text')], hourWord: false };
}

/** Code points: how far back a unit that several quantities share looks for the quantity's word. */
export const LOOKBACK = 48;
const CLAUSE_BREAK = /[.;!?\n0-9]/u;
/** @type {Map<string, RegExp>} */
const wordsRegex = new Map();

/**
 * For a unit with no default quantity ("25 ppm": H2S or CO?): the quantity whose word comes last before the number,
 * at most LOOKBACK code points back and in the same clause (no digit or . ; ! ? or line break between), among the
 * quantities of the domain that take the unit (readings.py `_named_before`).
 * @param {Rules} rules @param {string} text @param {number} start  UTF-16 index of the number
 * @param {string} unit @param {string} domain
 * @returns {Quantity | null}
 */
function namedBefore(rules, text, start, unit, domain) {
  let low = start;
  for (let k = 0; k < LOOKBACK && low > 0; k++) {
    const c = text.charCodeAt(low - 1);
    low -= low >= 2 && c >= 0xdc00 && c <= 0xdfff && text.charCodeAt(low - 2) >= 0xd800 && text.charCodeAt(low - 2) <= 0xdbff ? 2 : 1;
  }
  const window = text.slice(low, start);
  /** @type {[number, Quantity] | null} */
  let best = null;
  for (const q of rules.quantities.values()) {
    if (!q.units.has(unit) || q.domain !== domain || !q.words.length) continue;
    const cacheKey = q.words.join('\u0000');
    let re = wordsRegex.get(cacheKey);
    if (!re) {
      re = new RegExp(phraseRegex(q.words).source, 'gu');
      wordsRegex.set(cacheKey, re);
    }
    re.lastIndex = 0;
    for (const m of window.matchAll(re)) {
      const end = (m.index ?? 0) + m[0].length;
      if (!CLAUSE_BREAK.test(window.slice(end)) && (best === null || end > best[0])) best = [end, q];
    }
  }
  return best ? best[1] : null;
}

/**
 * @param {Rules} rules @param {string} text @param {RegExpMatchArray} m @param {number} first
 * @param {(i: number) => number} cp
 * @returns {Candidate | null}
 */
function bpCandidate(rules, text, m, first, cp) {
  const unitText = m[first + 2];
  if (unitText !== undefined && rules.resolveUnit(unitText) !== rules.bp_unit) return null;
  const start = m.index ?? 0;
  const end = unitText !== undefined ? start + m[0].length : endOf(m, first + 1);
  const span = text.slice(start, end);
  const sys = rules.quantity(rules.bp_systolic);
  const dia = rules.quantity(rules.bp_diastolic);
  return {
    start, end, hourWord: false, readings: [
      makeReading(sys, parseNumber(m[first]), rules.bp_unit, span, cp(start), cp(end), 'text'),
      makeReading(dia, parseNumber(m[first + 1]), rules.bp_unit, span, cp(start), cp(end), 'text'),
    ],
  };
}

/** Whether text[low:at] ends in a digit, blanks aside. @param {string} text @param {number} low @param {number} at */
function digitBefore(text, low, at) {
  let i = at - 1;
  while (i >= low && ' \t\u00a0'.includes(text[i])) i--;
  return i >= low && '0123456789'.includes(text[i]);
}

/**
 * Every reading in free text, in order (see readings.py for the rules).
 * @param {string} text @param {Rules} rules @param {string | null} [kind]
 * @returns {Reading[]}
 */
export function parseReadings(text, rules, kind = null) {
  const domain = domainFor(kind, text, rules);
  const c = rules.compiled;
  const cp = cpIndex(text);
  /** @type {Array<Candidate | null>} */
  const found = [
    ...Array.from(text.matchAll(c.bp), (m) => bpCandidate(rules, text, m, 2, cp)),
    ...Array.from(text.matchAll(c.bpBare), (m) => bpCandidate(rules, text, m, 1, cp)),
    ...Array.from(text.matchAll(c.word), (m) => wordCandidate(rules, text, m, domain, cp)),
    ...Array.from(text.matchAll(c.unit), (m) => unitCandidate(rules, text, m, domain, cp)),
  ];
  const candidates = /** @type {Candidate[]} */ (found.filter((f) => f !== null))
    .sort((a, b) => a.start - b.start || (a.start - a.end) - (b.start - b.end));
  /** @type {Reading[]} */
  const out = [];
  let lastEnd = 0;
  for (const cand of candidates) {
    if (cand.start < lastEnd) continue;
    if (cand.hourWord && digitBefore(text, lastEnd, cand.start)) continue;
    out.push(...cand.readings);
    lastEnd = cand.end;
  }
  return out;
}

/** @param {string} q @param {unknown} value */
function formValue(q, value) {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ReadingError(`${q}: "${show(value)}" is not a number`);
    return value;
  }
  const m = typeof value === 'string' ? FORM_NUMBER.exec(value) : null;
  if (!m) throw new ReadingError(`${q}: "${show(value)}" is not a number`);
  return valueOf(m[1], m[2]);
}

/** @param {Rules} rules @param {Quantity} q @param {unknown} unit */
function formUnit(rules, q, unit) {
  if (unit === null || unit === undefined || unit === '') {
    if (q.default_unit === null) throw new ReadingError(`${q.id}: a unit is needed: use one of ${[...q.units.keys()].join(', ')}`);
    return q.default_unit;
  }
  const resolved = typeof unit === 'string' ? (q.units.has(unit) ? unit : rules.resolveUnit(unit)) : null;
  if (resolved === null || !q.units.has(resolved)) {
    throw new ReadingError(`unknown unit "${show(unit)}" for ${q.id}: use one of ${[...q.units.keys()].join(', ')}`);
  }
  return resolved;
}

/**
 * [{quantity, value, unit}] from a screen -> readings (source "form"); quantity "bp" with value "120/80" gives a
 * systolic and a diastolic reading.
 * @param {ReadonlyArray<{quantity?: unknown, value?: unknown, unit?: unknown}>} fields @param {Rules} rules
 * @returns {Reading[]}
 */
export function readingsFromForm(fields, rules) {
  /** @type {Reading[]} */
  const out = [];
  for (const f of fields) {
    const qid = f.quantity;
    if (qid === rules.bp_form_quantity) {
      const m = typeof f.value === 'string' ? FORM_BP.exec(f.value) : null;
      if (!m) throw new ReadingError(`${qid}: "${show(f.value)}" is not a blood pressure such as 120/80`);
      const sys = rules.quantity(rules.bp_systolic);
      const dia = rules.quantity(rules.bp_diastolic);
      const unit = formUnit(rules, sys, f.unit);
      for (const [q, number] of /** @type {Array<[Quantity, string]>} */ ([[sys, m[1]], [dia, m[2]]])) {
        const v = parseNumber(number);
        out.push(makeReading(q, v, unit, `${q.label} ${fmtQuantity(v, /** @type {any} */ (rules.units.get(unit)))}`, null, null, 'form'));
      }
      continue;
    }
    if (typeof qid !== 'string' || !rules.quantities.has(qid)) {
      throw new ReadingError(`unknown quantity "${show(qid)}": use one of ${[...rules.quantities.keys(), rules.bp_form_quantity].join(', ')}`);
    }
    const q = rules.quantity(qid);
    const value = formValue(qid, f.value);
    const unit = formUnit(rules, q, f.unit);
    out.push(makeReading(q, value, unit, `${q.label} ${fmtQuantity(value, /** @type {any} */ (rules.units.get(unit)))}`, null, null, 'form'));
  }
  return out;
}
