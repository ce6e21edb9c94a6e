// task_view.js: one task screen (equipment fault, triage, screening). Its form has a number and a unit for each
// reading the rules know for that task (task_forms.js) and free-text notes; Submit streams the engine's answer into
// the "working" area (unvalidated text, never a card), then the reviewed card replaces it and the audit keeps the
// record. Only one answer runs at a time, across all screens (answer_lock.js).

import { auditRecord } from './audit.js';
import { cardContent, renderCard } from './card_view.js';
import { messageOf, nameOf } from './errors.js';
import { FASTING_FOR, ONE_READING, assetChoices, fieldGroups, filledFields, notesText } from './task_forms.js';

/** @typedef {import('./answer_lock.js').AnswerLock} AnswerLock */
/** @typedef {import('./field_client.js').Field} Field */
/** @typedef {import('./chat_view.js').ChatEngine} ChatEngine */
/** @typedef {import('./task_forms.js').FieldSpec} FieldSpec */
/**
 * @typedef {object} EngineInfo  what answers, as the card and the audit say it
 * @property {'webgpu' | 'cpu' | 'server'} engine
 * @property {string} where        "on this device (WebGPU)", "on this device's CPU" or "on the server <origin>"
 * @property {string} model
 * @property {string | null} packageId
 */
/**
 * @typedef {object} TaskHost
 * @property {AnswerLock} lock
 * @property {() => Field | null} field
 * @property {() => {engine: ChatEngine, info: EngineInfo} | null} current
 * @property {(record: Record<string, any>) => Promise<void>} record  keeps an audit record
 * @property {number | null} maxTokens  a lower cap on the tasks' token limits (tests)
 */

/**
 * @param {Document} doc @param {string} tag @param {Record<string, string>} [attrs] @param {string} [text]
 * @returns {HTMLElement}
 */
function make(doc, tag, attrs = {}, text) {
  const e = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * The unit control of a field: a select, or the unit as text when there is only one.
 * @param {Document} doc @param {string} id @param {string} label @param {{id: string, display: string}[]} units
 */
function unitControl(doc, id, label, units) {
  if (units.length === 1) {
    const only = make(doc, 'span', { class: 'unit', id, 'data-unit': units[0].id }, units[0].display);
    return only;
  }
  const select = /** @type {HTMLSelectElement} */ (make(doc, 'select', { id, 'aria-label': `${label} unit` }));
  for (const u of units) select.append(make(doc, 'option', { value: u.id }, u.display));
  return select;
}

/** @param {HTMLElement} control */
function unitOf(control) {
  return control instanceof HTMLSelectElement ? control.value : control.dataset.unit ?? '';
}

export class TaskView {
  /** @param {Document} doc @param {string} kind @param {TaskHost} host */
  constructor(doc, kind, host) {
    this.doc = doc;
    this.kind = kind;
    this.host = host;
    const panel = doc.getElementById(`panel-${kind}`);
    if (!panel) throw new Error(`index.html lacks #panel-${kind}: rebuild the app`);
    this.panel = panel;
    /** @param {string} sel */
    const part = (sel) => {
      const e = /** @type {HTMLElement | null} */ (panel.querySelector(sel));
      if (!e) throw new Error(`#panel-${kind} lacks ${sel}: rebuild the app`);
      return e;
    };
    this.form = /** @type {HTMLFormElement} */ (part('form'));
    this.fieldsBox = part('.task-fields');
    this.notes = /** @type {HTMLTextAreaElement} */ (part('textarea[name="notes"]'));
    this.error = part('.form-error');
    this.submit = /** @type {HTMLButtonElement} */ (part('.task-submit'));
    this.stop = /** @type {HTMLButtonElement} */ (part('.task-stop'));
    this.working = part('.working');
    this.workingText = part('.working-text');
    this.rulesNow = part('.rules-now');
    this.cardBox = part('.task-card');
    /** @type {Array<{quantity: () => string, value: HTMLInputElement, unit: () => string}>} */
    this.inputs = [];
    /** @type {HTMLInputElement | null} the fault screen's asset */
    this.asset = null;
    /** @type {HTMLSelectElement | null} the screening screen's choice of reading */
    this.which = null;
    /** @type {HTMLElement | null} the screening screen's "fasting?" question */
    this.fasting = null;
    this.mine = false; // this screen's answer holds the lock
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.ask();
    });
    this.form.addEventListener('reset', () => {
      this.showError('');
      queueMicrotask(() => this.syncFasting());
    });
    this.stop.addEventListener('click', () => this.host.lock.abort());
    host.lock.onChange(() => this.updateControls());
    this.updateControls();
  }

  /** Draws the form's fields from the rules (once the rules file is loaded). @param {Field} field */
  build(field) {
    const doc = this.doc;
    const box = this.fieldsBox;
    box.replaceChildren();
    this.inputs = [];
    if (this.kind === 'fault') {
      const row = make(doc, 'div', { class: 'asset' });
      const id = 'fault-asset';
      this.asset = /** @type {HTMLInputElement} */ (make(doc, 'input', {
        id, name: 'asset', list: 'fault-assets', autocomplete: 'off', placeholder: 'e.g. P-3, mud pump, generator',
      }));
      const list = make(doc, 'datalist', { id: 'fault-assets' });
      for (const a of assetChoices(field.rules)) list.append(make(doc, 'option', { value: a.value }, a.label));
      row.append(make(doc, 'label', { for: id }, 'Asset'), this.asset, list);
      box.append(row);
    }
    const groups = fieldGroups(this.kind, field.rules);
    if (ONE_READING.has(this.kind)) {
      box.append(this.oneReading(groups.flatMap((g) => g.fields)));
      return;
    }
    for (const g of groups) {
      const set = make(doc, 'fieldset', { class: 'readings' });
      set.append(make(doc, 'legend', {}, g.legend));
      for (const f of g.fields) set.append(this.readingRow(f));
      box.append(set);
    }
  }

  /** @param {FieldSpec} f */
  readingRow(f) {
    const doc = this.doc;
    const id = `${this.kind}-${f.quantity}`;
    const row = make(doc, 'div', { class: 'reading', 'data-quantity': f.quantity });
    const value = /** @type {HTMLInputElement} */ (make(doc, 'input', {
      id, name: f.quantity, inputmode: f.placeholder ? 'text' : 'decimal', autocomplete: 'off',
      ...(f.placeholder ? { placeholder: f.placeholder } : {}),
    }));
    const unit = unitControl(doc, `${id}-unit`, f.label, f.units);
    row.append(make(doc, 'label', { for: id }, f.label), value, unit);
    this.inputs.push({ quantity: () => f.quantity, value, unit: () => unitOf(unit) });
    return row;
  }

  /** The screening screen: which reading, its value and unit, and (for glucose) whether fasting. @param {FieldSpec[]} specs */
  oneReading(specs) {
    const doc = this.doc;
    const box = make(doc, 'div', { class: 'one-reading' });
    const which = /** @type {HTMLSelectElement} */ (make(doc, 'select', { id: 'screening-quantity', name: 'quantity' }));
    for (const f of specs) which.append(make(doc, 'option', { value: f.quantity }, f.label));
    const value = /** @type {HTMLInputElement} */ (make(doc, 'input', {
      id: 'screening-value', name: 'value', inputmode: 'decimal', autocomplete: 'off',
    }));
    const unitBox = make(doc, 'span', { class: 'unit-box' });
    /** @type {HTMLElement} */
    let unit = make(doc, 'span');
    const fasting = make(doc, 'fieldset', { class: 'fasting' });
    fasting.append(make(doc, 'legend', {}, 'Fasting (nothing to eat or drink for 8 hours)?'));
    for (const [v, text] of [['yes', 'Yes'], ['no', 'No'], ['', 'Not known']]) {
      const label = make(doc, 'label');
      const radio = make(doc, 'input', { type: 'radio', name: 'fasting', value: v });
      if (!v) radio.setAttribute('checked', '');
      label.append(radio, ` ${text}`);
      fasting.append(label);
    }
    const sync = () => {
      const f = specs.find((s) => s.quantity === which.value) ?? specs[0];
      unit = unitControl(doc, 'screening-unit', f.label, f.units);
      unitBox.replaceChildren(unit);
      value.placeholder = f.placeholder;
      value.inputMode = f.placeholder ? 'text' : 'decimal';
      this.syncFasting();
    };
    which.addEventListener('change', sync);
    this.which = which;
    this.fasting = fasting;
    const choice = make(doc, 'div', { class: 'reading-choice' });
    choice.append(make(doc, 'label', { for: 'screening-quantity' }, 'Reading'), which);
    const row = make(doc, 'div', { class: 'reading' });
    row.append(make(doc, 'label', { for: 'screening-value' }, 'Value'), value, unitBox);
    box.append(choice, row, fasting);
    this.inputs.push({ quantity: () => which.value, value, unit: () => unitOf(unit) });
    sync();
    this.form.addEventListener('reset', () => queueMicrotask(sync));
    return box;
  }

  syncFasting() {
    if (this.fasting && this.which) this.fasting.hidden = this.which.value !== FASTING_FOR;
  }

  /** @returns {'yes' | 'no' | ''} */
  fastingAnswer() {
    if (!this.fasting || this.fasting.hidden) return '';
    const checked = /** @type {HTMLInputElement | null} */ (this.fasting.querySelector('input:checked'));
    const v = checked?.value ?? '';
    return v === 'yes' || v === 'no' ? v : '';
  }

  updateControls() {
    const lock = this.host.lock;
    const ready = this.host.current() !== null && this.host.field() !== null;
    this.submit.disabled = lock.busy || !ready;
    this.stop.hidden = !this.mine;
    this.panel.setAttribute('aria-busy', String(this.mine));
  }

  /** @param {string} text */
  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  async ask() {
    const field = this.host.field();
    const current = this.host.current();
    if (!field || !current) return;
    const input = {
      notes: notesText(this.notes.value, this.fastingAnswer()),
      asset: this.asset?.value.trim() || null,
      fields: filledFields(this.inputs.map((i) => ({ quantity: i.quantity(), value: i.value.value, unit: i.unit() }))),
    };
    if (!input.fields.length && !input.notes && !input.asset) {
      this.showError('Enter at least one reading or a note.');
      return;
    }
    const controller = this.host.lock.acquire();
    if (!controller) return;
    this.mine = true;
    this.updateControls();
    this.showError('');
    this.cardBox.replaceChildren();
    this.working.hidden = false;
    this.workingText.textContent = '';
    this.rulesNow.hidden = true;
    const time = new Date();
    try {
      const { answerTask, rulesFirst } = await import('./field_client.js'); // loaded already with the screens
      const now = rulesFirst(this.kind, input, field);
      if (now.status === 'escalate') {
        this.rulesNow.textContent = `ESCALATE: ${now.fired.map((f) => f.message).join('; ')}. The rules decided ` +
          'this from the readings; the assistant\'s answer follows.';
        this.rulesNow.hidden = false;
      }
      const answer = await answerTask(current.engine, this.kind, input, field, {
        maxTokens: this.host.maxTokens, signal: controller.signal,
        onText: (text) => { this.workingText.textContent = text; },
      });
      const task = field.tasks.task(this.kind);
      const c = answer.completion;
      const content = cardContent(answer.card, task, answer.schema, {
        where: current.info.where, model: current.info.model, content: c.content, finish_reason: c.finish_reason,
        stopped: c.stopped, error: c.error, maxTokens: answer.request.max_tokens, probability: answer.probability,
      });
      this.cardBox.replaceChildren(renderCard(this.doc, answer.card, content, current.info.engine));
      await this.host.record(auditRecord({
        time, kind: this.kind, engine: current.info.engine, where: current.info.where, model: current.info.model,
        packageId: current.info.packageId, rules: { rules_version: field.rules.rules_version, sha256: field.rules.sha256 },
        request: answer.request, input, completion: c, probability: answer.probability, card: answer.card,
      }));
    } catch (e) {
      // a form value that is not a reading (ReadingError): nothing was asked
      this.showError(nameOf(e) === 'ReadingError' ? `Check the readings: ${messageOf(e)}` : `The answer failed: ${messageOf(e)}`);
    } finally {
      this.working.hidden = true;
      this.mine = false;
      this.host.lock.release();
    }
  }
}
