// task_forms.js: which readings each task screen asks for, with the units the rules file accepts for them (no DOM:
// task_view.js draws the fields, tests/js/ui-task-forms.test.js checks them against rules.json). A field is a number
// and a unit; "bp" is the rules' blood-pressure form quantity (value "120/80", both numbers in mmHg).

/** @typedef {import('../field/rules.js').Rules} Rules */
/**
 * @typedef {object} FieldSpec
 * @property {string} quantity  a rules quantity id, or the rules' bp form quantity
 * @property {string} label     for people
 * @property {{id: string, display: string}[]} units  the preferred first
 * @property {string} placeholder
 */
/** @typedef {{legend: string, fields: FieldSpec[]}} FieldGroup */

/**
 * Per kind: groups of [quantity, label, preferred unit]. Labels say the reading in full; units are the rules'.
 * @type {Record<string, Array<[string, Array<[string, string, string | null]>]>>}
 */
const LAYOUT = {
  fault: [
    ['Mechanical', [['pressure', 'Pressure', 'psi'], ['vibration', 'Vibration', 'mm/s'],
      ['bearing_temp', 'Bearing temperature', '°C'], ['equipment_temp', 'Other temperature', '°C']]],
    ['Electrical', [['voltage', 'Voltage', 'V'], ['current', 'Current', 'A'],
      ['winding_temp', 'Winding temperature', '°C'], ['insulation', 'Insulation resistance', 'MΩ']]],
    ['Gas', [['h2s', 'H2S', 'ppm'], ['co', 'CO', 'ppm'], ['o2', 'O2', '%'], ['lel', 'LEL', '%LEL']]],
  ],
  triage: [
    ['Vital signs', [['spo2', 'SpO2', '%'], ['heart_rate', 'Heart rate', 'bpm'],
      ['resp_rate', 'Breathing rate', 'breaths/min'], ['bp', 'Blood pressure', null], ['temp', 'Temperature', '°C'],
      ['gcs', 'GCS (3-15)', null]]],
  ],
  screening: [
    ['Reading', [['glucose', 'Blood glucose', 'mg/dL'], ['bp', 'Blood pressure', null], ['spo2', 'SpO2', '%'],
      ['temp', 'Temperature', '°C'], ['peak_flow', 'Peak flow', 'L/min'], ['heart_rate', 'Heart rate', 'bpm']]],
  ],
};

/** The screening screen asks for one reading: which one is chosen from a list. */
export const ONE_READING = new Set(['screening']);
/** Where the screening screen asks "fasting?" (the reading's meaning depends on it). */
export const FASTING_FOR = 'glucose';

/**
 * @param {Rules} rules @param {string} quantity @param {string} label @param {string | null} preferred
 * @returns {FieldSpec}
 */
function fieldSpec(rules, quantity, label, preferred) {
  const qid = quantity === rules.bp_form_quantity ? rules.bp_systolic : quantity;
  const q = rules.quantity(qid);
  const ids = [...q.units.keys()];
  if (preferred && ids.includes(preferred)) ids.splice(0, 0, ...ids.splice(ids.indexOf(preferred), 1));
  const units = ids.map((id) => ({ id, display: rules.units.get(id)?.display || (id === 'score' ? 'points' : id) }));
  const placeholder = quantity === rules.bp_form_quantity ? '120/80' : '';
  return { quantity, label, units, placeholder };
}

/**
 * The screen's fields, grouped, with the rules' units (a quantity the rules file lacks is left out).
 * @param {string} kind @param {Rules} rules
 * @returns {FieldGroup[]}
 */
export function fieldGroups(kind, rules) {
  const layout = LAYOUT[kind];
  if (!layout) throw new Error(`no form for task kind "${kind}"`);
  return layout.map(([legend, fields]) => ({
    legend,
    fields: fields
      .filter(([q]) => q === rules.bp_form_quantity || rules.quantities.has(q))
      .map(([q, label, unit]) => fieldSpec(rules, q, label, unit)),
  }));
}

/**
 * The asset choices of the fault screen: the rules' named assets (id and label), then the asset classes.
 * @param {Rules} rules
 * @returns {{value: string, label: string}[]}
 */
export function assetChoices(rules) {
  return [
    ...[...rules.assets.values()].map((a) => ({ value: a.id, label: a.label })),
    ...[...rules.asset_classes.entries()].map(([id, [label]]) => ({ value: id, label: `any ${label}` })),
  ];
}

/**
 * The filled-in fields as readingsFromForm wants them: empty values left out, values trimmed.
 * @param {Array<{quantity: string, value: string, unit: string}>} entries
 * @returns {Array<{quantity: string, value: string, unit: string}>}
 */
export function filledFields(entries) {
  return entries.map((e) => ({ ...e, value: e.value.trim() })).filter((e) => e.value !== '');
}

/**
 * The notes as sent: the screening screen's fasting answer first, then what was typed.
 * @param {string} notes @param {'yes' | 'no' | ''} [fasting]
 */
export function notesText(notes, fasting = '') {
  const lines = [];
  if (fasting === 'yes') lines.push('Fasting: yes.');
  if (fasting === 'no') lines.push('Fasting: no.');
  if (notes.trim()) lines.push(notes.trim());
  return lines.join(' ');
}
