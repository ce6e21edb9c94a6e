// app/ui/task_forms.js against the shipped rules file: each screen asks for readings the rules know, in the units the
// rules accept, and what it hands to readingsFromForm parses.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { loadRules, readingsFromForm } from '../../app/field/index.js';
import { assetChoices, fieldGroups, filledFields, notesText } from '../../app/ui/task_forms.js';
import { ROOT } from './helpers/python.js';

const rules = loadRules(new Uint8Array(readFileSync(join(ROOT, 'app/field/rules.json'))));

/** @param {string} kind */
const fields = (kind) => fieldGroups(kind, rules).flatMap((g) => g.fields);

test('every field is a rules quantity (or the bp form quantity) with exactly the rules units', () => {
  for (const kind of ['fault', 'triage', 'screening']) {
    const fs = fields(kind);
    assert.ok(fs.length >= 5, `${kind}: ${fs.length} fields`);
    for (const f of fs) {
      const q = rules.quantity(f.quantity === 'bp' ? rules.bp_systolic : f.quantity);
      assert.deepEqual(f.units.map((u) => u.id).sort(), [...q.units.keys()].sort(), `${kind}.${f.quantity}`);
      assert.ok(f.units.every((u) => u.display), `${kind}.${f.quantity}: a unit without a name`);
    }
  }
});

test('the screens ask for what the task needs, preferred units first', () => {
  const triage = Object.fromEntries(fields('triage').map((f) => [f.quantity, f]));
  assert.deepEqual(Object.keys(triage), ['spo2', 'heart_rate', 'resp_rate', 'bp', 'temp', 'gcs']);
  assert.deepEqual(triage.temp.units.map((u) => u.id), ['°C', '°F']);
  assert.equal(triage.bp.placeholder, '120/80');
  const fault = Object.fromEntries(fields('fault').map((f) => [f.quantity, f]));
  assert.equal(fault.pressure.units[0].id, 'psi');
  assert.deepEqual(fault.vibration.units.map((u) => u.id), ['mm/s', 'in/s']);
  for (const q of ['bearing_temp', 'h2s', 'co', 'o2', 'lel']) assert.ok(fault[q], q);
  const screening = fields('screening').map((f) => f.quantity);
  assert.deepEqual(screening.slice(0, 2), ['glucose', 'bp']);
  assert.deepEqual(fields('screening')[0].units.map((u) => u.id), ['mg/dL', 'mmol/L']);
});

test('assets: the named ones first, then the classes', () => {
  const choices = assetChoices(rules);
  assert.deepEqual(choices.slice(0, 3).map((c) => c.value), ['P-3', 'C-1', 'G-1']);
  assert.equal(choices[0].label, 'mud pump P-3');
  assert.ok(choices.some((c) => c.value === 'pump' && c.label === 'any pump'));
});

test('filled fields parse into readings; empty ones are left out', () => {
  const filled = filledFields([
    { quantity: 'spo2', value: ' 84 ', unit: '%' }, { quantity: 'heart_rate', value: '', unit: 'bpm' },
    { quantity: 'bp', value: '150/95', unit: 'mmHg' }, { quantity: 'temp', value: '101.3', unit: '°F' },
  ]);
  assert.deepEqual(filled.map((f) => f.value), ['84', '150/95', '101.3']);
  const readings = readingsFromForm(filled, rules);
  assert.deepEqual(readings.map((r) => [r.quantity, r.value, r.unit]),
    [['spo2', 84, '%'], ['sbp', 150, 'mmHg'], ['dbp', 95, 'mmHg'], ['temp', 101.3, '°F']]);
});

test('notes: the fasting answer first', () => {
  assert.equal(notesText('  feels dizzy ', 'yes'), 'Fasting: yes. feels dizzy');
  assert.equal(notesText('', 'no'), 'Fasting: no.');
  assert.equal(notesText('x', ''), 'x');
  assert.equal(notesText('  '), '');
});
