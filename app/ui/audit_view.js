// audit_view.js: the audit line under the task screens: how many records this device keeps, and the "Export audit
// (JSON Lines)" button, which downloads them all as a .jsonl file made in the page (nothing goes over the network).

import { AuditLog, downloadJsonLines } from './audit.js';
import { messageOf } from './errors.js';

export class AuditView {
  /** @param {Document} doc @param {IDBFactory | undefined} idb */
  constructor(doc, idb) {
    this.doc = doc;
    this.status = /** @type {HTMLElement} */ (doc.getElementById('audit-status'));
    this.button = /** @type {HTMLButtonElement} */ (doc.getElementById('audit-export'));
    this.button.addEventListener('click', () => this.export());
    /** @type {Promise<AuditLog | null>} */
    this.log = idb
      ? AuditLog.open(idb).catch((e) => {
        this.say(`Audit records cannot be kept in this browser (${messageOf(e)}).`, 'failed');
        return null;
      })
      : Promise.resolve(null);
    if (!idb) this.say('Audit records cannot be kept in this browser (no IndexedDB).', 'failed');
    this.refresh();
  }

  /** @param {string} text @param {string} state */
  say(text, state) {
    this.status.textContent = text;
    this.status.dataset.state = state;
  }

  async refresh() {
    const log = await this.log;
    if (!log) {
      this.button.disabled = true;
      return;
    }
    const n = (await log.all()).length;
    this.say(`Audit: ${n} record${n === 1 ? '' : 's'} on this device, never sent anywhere.`, 'ok');
    this.button.disabled = n === 0;
  }

  /** Keeps one record; a failure is said on screen, never thrown at the answer. @param {Record<string, any>} record */
  async record(record) {
    const log = await this.log;
    if (!log) return;
    try {
      await log.add(record);
      await this.refresh();
    } catch (e) {
      this.say(`The audit record could not be stored: ${messageOf(e)}`, 'failed');
    }
  }

  async export() {
    const log = await this.log;
    if (!log) return;
    downloadJsonLines(this.doc, await log.all(), new Date());
  }
}
