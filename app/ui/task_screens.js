// task_screens.js: the ready screen's tabs (free chat, equipment fault, triage, screening), the three task screens
// and the audit line, given the engine in use (app.js setEngine) and the shipped rules and tasks files.
// The field code (and its JSON Schema validator, a bare specifier the import map resolves) is imported when the
// screens start, not with the page: where it cannot load, the task screens say why and the free chat still works.

import { AuditView } from './audit_view.js';
import { messageOf } from './errors.js';
import { Tabs } from './tabs.js';
import { TaskView } from './task_view.js';

/** @typedef {import('./answer_lock.js').AnswerLock} AnswerLock */
/** @typedef {import('./chat_view.js').ChatEngine} ChatEngine */
/** @typedef {import('./task_view.js').EngineInfo} EngineInfo */
/** @typedef {import('./field_client.js').Field} Field */

export const TASK_KINDS = /** @type {const} */ (['fault', 'triage', 'screening']);

export class TaskScreens {
  /**
   * @param {Document} doc @param {AnswerLock} lock
   * @param {{maxTokens: number | null}} opts  maxTokens: a lower cap on the tasks' token limits
   */
  constructor(doc, lock, opts) {
    this.doc = doc;
    this.lock = lock;
    /** @type {{engine: ChatEngine, info: EngineInfo} | null} */
    this.current = null;
    /** @type {Field | null} */
    this.field = null;
    this.tabs = new Tabs(doc, /** @type {HTMLElement} */ (doc.getElementById('tabs')));
    this.audit = new AuditView(doc, globalThis.indexedDB);
    /** @type {import('./task_view.js').TaskHost} */
    const host = {
      lock, maxTokens: opts.maxTokens,
      field: () => this.field,
      current: () => this.current,
      record: (r) => this.audit.record(r),
    };
    this.views = TASK_KINDS.map((kind) => new TaskView(doc, kind, host));
    this.loaded = this.load().then((field) => {
      this.field = field;
      for (const v of this.views) {
        v.build(field);
        v.updateControls();
      }
    }, (e) => {
      for (const v of this.views) v.showError(`The task screens cannot start: ${messageOf(e)}`);
    });
  }

  /** @returns {Promise<Field>} */
  async load() {
    const { loadField } = await import('./field_client.js');
    return loadField(globalThis.fetch.bind(globalThis), this.doc.baseURI);
  }

  /** @param {ChatEngine | null} engine @param {EngineInfo | null} info */
  setEngine(engine, info) {
    this.current = engine && info ? { engine, info } : null;
    for (const v of this.views) v.updateControls();
  }
}
