// patterns.js: the regular expressions the rules compile to, and the matching helpers (negation, exceptions).
// The same pattern source as app/field/patterns.py, compiled with flags "dgu" here and none there: ASCII classes
// instead of \w \b \d \s, fixed-width lookbehind, literal text escaped with each letter as its class of cases (no
// case-insensitive flag: Python's lets [A-Za-z] match "İ" and "ı", JS's does not). Offsets that leave this module
// are in code points, as Python counts them (cpIndex).

export const WS = '[ \\t\\u00a0]';
export const FLEX = '[ \\t\\u00a0:=\\-]*';
export const LEFT = '(?<![A-Za-z0-9])';
export const RIGHT = '(?![A-Za-z0-9])';
export const RIGHT_LETTER = '(?![A-Za-z])';
export const NUMBER = '[0-9]{1,3}(?:,[0-9]{3})+(?:\\.[0-9]{1,6})?|[0-9]{1,7}(?:\\.[0-9]{1,6})?';
export const NUMBER_END = '(?![0-9]|[.,][0-9])';
export const SIGN = '(?:(?<![A-Za-z0-9.,\\-])(-))?';
const FILLERS = ['is', 'was', 'are', 'were', 'of', 'at', 'now', 'reads', 'reading', 'measured', 'around', 'about',
  'approx.', 'approx', 'approximately', 'down to', 'up to', 'dropped to', 'fell to', 'rose to', 'increased to',
  'decreased to', 'to'];
const SYNTAX = new Set('\\^$.|?*+()[]{}/');

/** text as a pattern that matches it in any case of its letters. @param {string} text */
export function escape(text) {
  return Array.from(text, (c) => {
    const cases = [...new Set([c, c.toLowerCase(), c.toUpperCase()].filter((x) => Array.from(x).length === 1))].sort();
    if (SYNTAX.has(c)) return '\\' + c;
    return cases.length === 1 ? c : '[' + cases.join('') + ']';
  }).join('');
}

/** A word as looked up: lower case, without spaces, hyphens, colons and equals signs. @param {string} text */
export const key = (text) => text.toLowerCase().replace(/[ \t\u00a0:=-]/g, '');
/** @param {string} text */
export const exactKey = (text) => text.replace(/[ \t\u00a0:=-]/g, '');
/** @param {string} s */
const cpLen = (s) => Array.from(s).length;
/** @param {string} c */
const isAlnum = (c) => /^[A-Za-z0-9]$/.test(c);

/**
 * One regex alternative per item, longest first (stable), each with the boundaries its ends need.
 * @param {readonly string[]} items @param {string} left @param {string} right
 */
export function alternation(items, left, right) {
  const sorted = items.map((s, i) => ({ s, i, n: cpLen(s) })).sort((a, b) => b.n - a.n || a.i - b.i);
  const out = sorted.map(({ s }) => {
    const body = s.split(/[ -]+/).filter((p) => p).map(escape).join(FLEX);
    return (isAlnum(s[0]) ? left : '') + body + (isAlnum(s[s.length - 1]) ? right : '');
  });
  return '(?:' + out.join('|') + ')';
}

/** @param {string} source */
export const compileSource = (source) => new RegExp(source, 'dgu');

/** @param {readonly string[]} phrases */
export const phraseRegex = (phrases) => compileSource(alternation(phrases, LEFT, RIGHT));

/**
 * The first match of a global regex (its lastIndex left at 0).
 * @param {RegExp} re @param {string} text
 */
export function firstMatch(re, text) {
  re.lastIndex = 0;
  const m = re.exec(text);
  re.lastIndex = 0;
  return m;
}

/**
 * UTF-16 index -> code point index, for one text.
 * @param {string} text
 * @returns {(i: number) => number}
 */
export function cpIndex(text) {
  const map = new Int32Array(text.length + 1);
  let cp = 0;
  for (let i = 0; i < text.length; i++) {
    map[i] = cp;
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      map[++i] = cp;
    }
    cp++;
  }
  map[text.length] = cp;
  return (i) => map[i];
}

const separator = () => `${WS}*(?:[:=~]${WS}*)?(?:${alternation(FILLERS, '', '')}${WS}+){0,2}`;
/** @param {string} s @returns {string[]} */
const words = (s) => [...(s.toLowerCase().match(/[a-z0-9']+/g) ?? [])];

/** @typedef {{start: number, end: number}} Span  UTF-16 offsets */

/** Everything matched in text, compiled once per rules file. */
export class Compiled {
  /** @param {import('./rules.js').Rules} rules */
  constructor(rules) {
    /** @type {Map<string, string>} */
    this.unitByAlias = new Map();
    /** @type {Map<string, string>} */
    this.unitByExact = new Map();
    /** @type {string[]} */
    const aliases = [];
    for (const unit of rules.units.values()) {
      for (const a of unit.aliases) {
        if (!this.unitByAlias.has(key(a))) this.unitByAlias.set(key(a), unit.id);
        aliases.push(a);
      }
      for (const a of unit.exact) {
        if (!this.unitByExact.has(exactKey(a))) this.unitByExact.set(exactKey(a), unit.id);
        aliases.push(a);
      }
    }
    const units = alternation(aliases, '', RIGHT);

    /** @type {Map<string, Array<[string, boolean]>>} key -> [quantity, needs a unit], in file order */
    this.words = new Map();
    /** @type {string[]} */
    const allWords = [];
    for (const q of rules.quantities.values()) {
      for (const [w, needsUnit] of [...q.words.map((w) => [w, false]), ...q.unit_words.map((w) => [w, true])]) {
        const k = key(/** @type {string} */ (w));
        if (!this.words.has(k)) this.words.set(k, []);
        this.words.get(k)?.push([q.id, /** @type {boolean} */ (needsUnit)]);
        allWords.push(/** @type {string} */ (w));
      }
    }
    const wordAlt = alternation(allWords, LEFT, RIGHT_LETTER);
    const sep = separator();
    this.word = compileSource(`(${wordAlt})${sep}${SIGN}(?<![0-9.,])(${NUMBER})${NUMBER_END}(?:${WS}*(${units}))?`);
    this.unit = compileSource(`${SIGN}(?<![A-Za-z0-9.,])(${NUMBER})${NUMBER_END}${WS}*(${units})` +
      `(?:${WS}+(?:${escape('of')}${WS}+)?(${wordAlt}))?`);
    const bpUnit = alternation(rules.units.get(rules.bp_unit)?.aliases ?? [], '', RIGHT);
    const pair = `([0-9]{2,3})${WS}*/${WS}*([0-9]{2,3})${NUMBER_END}`;
    this.bp = compileSource(`(${alternation(rules.bp_words, LEFT, RIGHT)})${sep}(?<![0-9.,])${pair}(?:${WS}*(${bpUnit}))?`);
    this.bpBare = compileSource(`(?<![A-Za-z0-9.,/])${pair}${WS}*(${bpUnit})`);
    this.hourWords = new Set(rules.hour_words.map(key));
    // a word that, after a number given without a unit, says it is no reading ("fever of 3 days"); sticky: matched
    // exactly at lastIndex, as Python's pattern.match(text, pos)
    this.notAReading = new RegExp(`${WS}*${alternation(rules.not_after_bare_number, '', RIGHT)}`, 'uy');

    /** @type {Map<string, string>} */
    this.assetByKey = new Map();
    /** @type {string[]} */
    const names = [];
    for (const asset of rules.assets.values()) {
      for (const a of [asset.id, ...asset.aliases]) {
        if (!this.assetByKey.has(key(a))) this.assetByKey.set(key(a), asset.id);
        names.push(a);
      }
    }
    this.asset = names.length ? compileSource(alternation(names, LEFT, RIGHT)) : null;
    /** @type {Map<string, string>} */
    this.classByKey = new Map();
    /** @type {string[]} */
    const keywords = [];
    for (const [cid, [, kws]] of rules.asset_classes) {
      for (const k of [cid, ...kws]) {
        if (!this.classByKey.has(key(k))) this.classByKey.set(key(k), cid);
        keywords.push(k);
      }
    }
    this.assetClass = keywords.length ? compileSource(alternation(keywords, LEFT, RIGHT)) : null;

    const neg = rules.negation;
    this.negBefore = neg.before.map((c) => ' ' + words(c).join(' ') + ' ');
    this.negAfter = neg.after.map((c) => ' ' + words(c).join(' ') + ' ');
    this.negWindow = neg.window;
    this.breakChars = Array.from(neg.break_chars);
    this.breakWords = new Set(neg.break_words.map((w) => w.toLowerCase()));
    /** @type {Array<[string, RegExp]>} */
    this.diagnosis = rules.diagnosis_phrases.map((p) => [p, phraseRegex([p])]);
  }

  /**
   * Whether a match at text[start:end] (UTF-16) is negated within its clause: a cue ("no", "denies", ...) among
   * the `window` words before it, or ("denied", "absent", ...) among those after it.
   * @param {string} text @param {number} start @param {number} end
   */
  negated(text, start, end) {
    const before = text.slice(0, start);
    const cut = Math.max(-1, ...this.breakChars.map((c) => before.lastIndexOf(c)));
    let ws = words(before.slice(cut + 1));
    for (let i = ws.length - 1; i >= 0; i--) {
      if (this.breakWords.has(ws[i])) {
        ws = ws.slice(i + 1);
        break;
      }
    }
    let window = ' ' + ws.slice(-this.negWindow).join(' ') + ' ';
    if (this.negBefore.some((c) => window.includes(c))) return true;
    const after = text.slice(end);
    const cuts = this.breakChars.map((c) => after.indexOf(c)).filter((i) => i >= 0);
    ws = words(cuts.length ? after.slice(0, Math.min(...cuts)) : after);
    for (let i = 0; i < ws.length; i++) {
      if (this.breakWords.has(ws[i])) {
        ws = ws.slice(0, i);
        break;
      }
    }
    window = ' ' + ws.slice(0, this.negWindow).join(' ') + ' ';
    return this.negAfter.some((c) => window.includes(c));
  }
}

/**
 * The first match of `pattern` in text that no exception covers and that is not negated (UTF-16 offsets).
 * @param {RegExp} pattern @param {RegExp | null} excepts @param {Compiled} compiled @param {string} text
 * @returns {Span | null}
 */
export function findPhrase(pattern, excepts, compiled, text) {
  const covered = excepts ? [...text.matchAll(excepts)].map((m) => ({ start: m.index ?? 0, end: (m.index ?? 0) + m[0].length })) : [];
  for (const m of text.matchAll(pattern)) {
    const start = m.index ?? 0;
    const end = start + m[0].length;
    if (covered.some((c) => c.start <= start && end <= c.end)) continue;
    if (!compiled.negated(text, start, end)) return { start, end };
  }
  return null;
}
