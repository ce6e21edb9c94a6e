// Every shared vector (tests/field/vectors.json) through the JS side (app/field/*.js): the exact output the Python
// side produced, and the hand-written check. tests/field/test_vectors.py runs the same vectors through Python.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  ReadingError, RulesError, convert, detectAsset, evaluate, fmtNum, loadRules, loadTasks, parseReadings,
  readingsFromForm, review, sha256Hex, taskRequest, taskSchema, unsupportedNumbers,
} from '../../app/field/index.js';
import { ROOT } from './helpers/python.js';

const VECTORS = JSON.parse(readFileSync(join(ROOT, 'tests/field/vectors.json'), 'utf8'));
const rulesBytes = new Uint8Array(readFileSync(join(ROOT, 'app/field/rules.json')));
const rules = loadRules(rulesBytes);
const tasks = loadTasks(new Uint8Array(readFileSync(join(ROOT, 'app/field/tasks.json'))));

/**
 * base with each {path, value} set, or {path, delete: true} removed.
 * @param {any} base @param {Array<{path: Array<string | number>, value?: unknown, delete?: boolean}>} patch
 */
function patched(base, patch) {
  const data = structuredClone(base);
  for (const p of patch) {
    const parents = p.path.slice(0, -1);
    const last = p.path[p.path.length - 1];
    let node = data;
    for (const k of parents) node = node[k];
    if (p.delete) {
      if (Array.isArray(node)) node.splice(Number(last), 1);
      else delete node[last];
    } else {
      node[last] = p.value;
    }
  }
  return data;
}

/** @param {any} args */
function readingsOf(args) {
  if ('readings' in args) return args.readings;
  return [...readingsFromForm(args.fields ?? [], rules), ...parseReadings(args.text ?? '', rules, args.kind ?? null)];
}

/** @param {string} fn @param {any} args @returns {any} */
function call(fn, args) {
  switch (fn) {
    case 'parse_readings': return parseReadings(args.text, rules, args.kind ?? null);
    case 'readings_from_form': return readingsFromForm(args.fields, rules);
    case 'convert': return convert(args.quantity, args.value, args.unit, args.to, rules);
    case 'detect_asset': return detectAsset(args.text, rules);
    case 'evaluate': return evaluate(args.kind, readingsOf(args), args.text ?? '', rules, args.asset ?? null);
    case 'unsupported_numbers': return unsupportedNumbers(args.answer, args.input, args.known ?? []);
    case 'review':
      return review(args.kind, args.text ?? '', readingsFromForm(args.fields ?? [], rules), args.completion, rules, tasks,
        args.asset ?? null);
    case 'task_schema': return taskSchema(args.kind, rules, tasks);
    case 'task_request':
      return taskRequest(args.kind, args.text ?? '', readingsFromForm(args.fields ?? [], rules), rules, tasks, args.asset ?? null);
    case 'load_rules': {
      const r = loadRules('raw' in args ? new TextEncoder().encode(args.raw) : patched(rules.data, args.patch ?? []));
      return { version: r.version, rules_version: r.rules_version, sha256: r.sha256 };
    }
    case 'load_tasks': {
      const t = loadTasks('raw' in args ? new TextEncoder().encode(args.raw) : patched(tasks.data, args.patch ?? []));
      return Object.fromEntries(['fault', 'triage', 'screening'].map((k) => [k, t.task(k).decisive]));
    }
    case 'fmt_num': return fmtNum(args.x);
    default: throw new Error(`unknown vector fn ${fn}`);
  }
}

/** @param {any} vector */
function run(vector) {
  try {
    return call(vector.fn, vector.args);
  } catch (e) {
    if (e instanceof RulesError || e instanceof ReadingError) return { error: { type: e.name, message: e.message } };
    throw e;
  }
}

/** The part of a result a vector's check states (tests/field/runner.py project). @param {string} fn @param {any} result @param {any} check */
function project(fn, result, check) {
  if (result && typeof result === 'object' && 'error' in result && Object.keys(result).length === 1) return { error: result.error.message };
  if (fn === 'parse_readings' || fn === 'readings_from_form') {
    return result.map((/** @type {any} */ r) => `${r.quantity} ${fmtNum(r.value)} ${r.unit}`);
  }
  if (fn === 'evaluate' || fn === 'review') {
    const full = { ...result, rules: result.fired.map((/** @type {any} */ f) => f.rule) };
    return Object.fromEntries(Object.keys(check).map((k) => [k, full[k]]));
  }
  return result;
}

describe('shared vectors', () => {
  test('the file holds at least 80 vectors', () => {
    assert.equal(VECTORS.format, 'fieldllm-field-vectors');
    assert.ok(VECTORS.vectors.length >= 80);
  });
  for (const vector of VECTORS.vectors) {
    test(vector.name, () => {
      const result = JSON.parse(JSON.stringify(run(vector)));
      assert.deepStrictEqual(result, vector.expect);
      if (vector.check !== null) assert.deepStrictEqual(project(vector.fn, result, vector.check), vector.check);
    });
  }
});

describe('loading', () => {
  test('rules loaded from bytes carry the sha256 of those bytes', async () => {
    const { createHash } = await import('node:crypto');
    assert.equal(rules.sha256, createHash('sha256').update(rulesBytes).digest('hex'));
    assert.equal(sha256Hex(new Uint8Array(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    for (const n of [55, 56, 63, 64, 65, 1000]) {
      const bytes = new Uint8Array(n).map((_, i) => (i * 31) & 0xff);
      assert.equal(sha256Hex(bytes), createHash('sha256').update(bytes).digest('hex'), `${n} bytes`);
    }
  });

  test('rules given as an object have no sha256; text is hashed as UTF-8', () => {
    assert.equal(loadRules(rules.data).sha256, null);
    const text = new TextDecoder().decode(rulesBytes);
    assert.equal(loadRules(text).sha256, rules.sha256);
  });
});

describe('no eval in the page', () => {
  test('the field modules and the validator compile no code at run time', () => {
    for (const file of ['answers.js', 'evaluate.js', 'numbers.js', 'patterns.js', 'readings.js', 'rules.js', 'sha256.js', 'index.js']) {
      const src = readFileSync(join(ROOT, 'app/field', file), 'utf8');
      assert.doesNotMatch(src, /\beval\s*\(|new\s+Function\s*\(/, file);
    }
    const dir = join(ROOT, 'node_modules/@cfworker/json-schema/dist/esm');
    for (const file of ['validate.js', 'validator.js', 'dereference.js', 'format.js']) {
      assert.doesNotMatch(readFileSync(join(dir, file), 'utf8'), /\beval\s*\(|new\s+Function\s*\(/, file);
    }
  });
});
