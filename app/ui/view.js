// view.js: the page's screens (one visible at a time), the problem screen, the download progress block and the
// notice line. `document.body.dataset.state` names what the app is doing, for styles and for the browser tests.

import { progressText } from './download_progress.js';

/** @typedef {import('./download_progress.js').DownloadProgress} DownloadProgress */
/** @typedef {'starting' | 'setup' | 'loading' | 'problem' | 'chat'} Screen */

/** Shortest time between two repaints of a running download's figures (ms). */
const PAINT_MS = 200;

const SCREENS = /** @type {const} */ (['starting', 'setup', 'loading', 'problem', 'chat']);

/** @param {Document} doc @param {string} id @returns {HTMLElement} */
export function byId(doc, id) {
  const el = doc.getElementById(id);
  if (!el) throw new Error(`index.html lacks #${id}: rebuild the app`);
  return el;
}

/** @param {HTMLElement} el @param {string} text */
export function setText(el, text) {
  el.textContent = text;
}

export class View {
  /** @param {Document} doc */
  constructor(doc) {
    this.doc = doc;
  }

  /** @param {string} id */
  el(id) {
    return byId(this.doc, id);
  }

  /**
   * @param {Screen} screen
   * @param {string} [state]  finer than the screen ("downloading", "ready", "device-unsupported", ...); default: the screen
   */
  show(screen, state = screen) {
    for (const s of SCREENS) this.el(`screen-${s}`).hidden = s !== screen;
    this.doc.body.dataset.state = state;
  }

  /**
   * The problem screen: what happened, what to do, and at most one action.
   * @param {string} state @param {string} title @param {string} text
   * @param {{label: string, run: () => void} | null} [action]
   */
  problem(state, title, text, action = null) {
    setText(this.el('problem-title'), title);
    setText(this.el('problem-text'), text);
    const button = /** @type {HTMLButtonElement} */ (this.el('problem-action'));
    button.hidden = !action;
    button.onclick = action ? () => action.run() : null;
    if (action) setText(button, action.label);
    this.show('problem', state);
  }

  /** A one-line notice above the conversation; empty text hides it. @param {string} text */
  notice(text) {
    const el = this.el('notice');
    setText(el, text);
    el.hidden = !text;
  }

  /** @param {boolean} online */
  network(online) {
    const server = this.doc.body.dataset.engine === 'server'; // answers come over the network (app.js useServer)
    setText(this.el('net-status'), online ? 'Online'
      : server ? 'Offline: the server cannot answer until the network returns' : 'Offline: the assistant keeps working on this device');
    this.el('net-status').dataset.online = String(online);
  }
}

/** The progress block of a download (first install or model update). */
export class DownloadView {
  /** @param {HTMLElement} root  an element with class "download" (see index.html) */
  constructor(root) {
    this.root = root;
    /** @param {string} cls */
    const part = (cls) => /** @type {HTMLElement} */ (root.querySelector(`.${cls}`));
    this.bar = /** @type {HTMLProgressElement} */ (part('download-bar'));
    this.bytes = part('download-bytes');
    this.files = part('download-files');
    this.rate = part('download-rate');
    this.eta = part('download-eta');
    this.lastPaint = 0;
    this.lastFiles = -1;
    /** @type {DownloadProgress | null} the latest figures, not painted yet */
    this.pending = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
  }

  /** @param {DownloadProgress} p */
  update(p) {
    // progress arrives per network chunk: repaint a few times a second, but always when a file is stored or the
    // download ends, and always paint the latest figures in the end (a stall never leaves old ones on screen)
    this.pending = p;
    const now = performance.now();
    if (p.phase === 'running' && p.filesDone === this.lastFiles && now - this.lastPaint < PAINT_MS) {
      this.timer ??= setTimeout(() => this.paint(), PAINT_MS);
      return;
    }
    this.paint();
  }

  paint() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    this.lastPaint = performance.now();
    this.lastFiles = p.filesDone;
    const t = progressText(p);
    this.root.hidden = false;
    this.bar.value = t.bar;
    setText(this.bytes, t.bytes);
    setText(this.files, t.files);
    setText(this.rate, t.rate);
    setText(this.eta, t.eta);
    this.root.dataset.files = `${p.filesDone}/${p.filesTotal}`;
    this.root.dataset.phase = p.phase;
  }
}
