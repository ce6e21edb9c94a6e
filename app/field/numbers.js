// numbers.js: rounding and printing numbers the same way as app/field/numbers.py, unit conversion, and the numbers
// an answer states that its input does not contain.

import { NUMBER, NUMBER_END } from './patterns.js';
import { ReadingError, show } from './rules.js';

/** @typedef {import('./rules.js').Quantity} Quantity */
/** @typedef {import('./rules.js').Unit} Unit */
/** @typedef {import('./rules.js').Rules} Rules */

// half a unit in the last place of a number written with 0..6 decimals: literals, no Math.pow
const HALF_ULP = [0.5, 0.05, 0.005, 0.0005, 0.00005, 0.000005, 0.0000005];
const IN_TEXT = new RegExp(`(?<![A-Za-z0-9.,])(${NUMBER})${NUMBER_END}`, 'gu');

/** Round to 4 decimals, halves up (as numbers.py); from 1e15 up a double has no decimals to round. @param {number} x */
export const round4 = (x) => (Math.abs(x) < 1e15 ? Math.floor(x * 10000 + 0.5) / 10000 : x);

/** The shortest text that reads back as x, rounded to 4 decimals. @param {number} x */
export const fmtNum = (x) => show(round4(x));

/** @param {number} x @param {Unit} unit */
export function fmtQuantity(x, unit) {
  if (!unit.display) return fmtNum(x);
  return fmtNum(x) + (unit.joined ? '' : ' ') + unit.display;
}

/** @param {number} low @param {number} high @param {Unit} unit */
export const fmtRange = (low, high, unit) => fmtNum(low) + '–' + fmtQuantity(high, unit);

/** @param {Quantity} q @param {number} value @param {string} unit */
export function toCanonical(q, value, unit) {
  const [factor, offset] = /** @type {[number, number]} */ (q.units.get(unit));
  return round4((value + offset) * factor);
}

/** @param {Quantity} q @param {number} canonical @param {string} unit */
export function fromCanonical(q, canonical, unit) {
  const [factor, offset] = /** @type {[number, number]} */ (q.units.get(unit));
  return round4(canonical / factor - offset);
}

/**
 * value in `unit` -> the same quantity in unit `to`, rounded to 4 decimals.
 * @param {string} quantity @param {number} value @param {string} unit @param {string} to @param {Rules} rules
 */
export function convert(quantity, value, unit, to, rules) {
  const q = rules.quantity(quantity);
  for (const u of [unit, to]) {
    if (!q.units.has(u)) throw new ReadingError(`unknown unit "${show(u)}" for ${q.id}: use one of ${[...q.units.keys()].join(', ')}`);
  }
  return fromCanonical(q, toCanonical(q, value, unit), to);
}

/** @param {string} text */
export const parseNumber = (text) => Number(text.replaceAll(',', ''));

/**
 * Every number written in text, as written and as a value (signs ignored: "P-3" holds 3).
 * @param {string} text
 * @returns {Array<[string, number]>}
 */
export function numbersIn(text) {
  return Array.from(text.matchAll(IN_TEXT), (m) => [m[1], parseNumber(m[1])]);
}

/**
 * Numbers the answer states that neither the input text nor `known` holds, as written in the answer, each once, in
 * order. A number matches a value that it rounds: "45" matches 45.04.
 * @param {string} answerText @param {string} inputText @param {Iterable<number>} [known]
 * @returns {string[]}
 */
export function unsupportedNumbers(answerText, inputText, known = []) {
  const values = [...numbersIn(inputText).map(([, v]) => v), ...Array.from(known, (v) => Math.abs(v))];
  /** @type {string[]} */
  const out = [];
  for (const [text, value] of numbersIn(answerText)) {
    const decimals = text.includes('.') ? text.split('.')[1].length : 0;
    const tol = HALF_ULP[decimals];
    if (!out.includes(text) && !values.some((v) => Math.abs(value - v) <= tol)) out.push(text);
  }
  return out;
}
