// answer_lock.js: one answer at a time. The free chat and the task screens share one engine (one GPU, one server
// slot), so a question waits for none: while an answer is being written the other screens' buttons are disabled.
// An engine switch or an app reload waits for whenIdle().

export class AnswerLock {
  constructor() {
    /** @type {AbortController | null} the answer being written */
    this.running = null;
    /** @type {(() => void)[]} resolved when the answer being written ends */
    this.idleWaiters = [];
    /** @type {Set<() => void>} told whenever busy changes */
    this.listeners = new Set();
  }

  get busy() {
    return this.running !== null;
  }

  /**
   * Takes the lock for one answer; null if another answer holds it. The caller aborts through the controller and
   * must call release() when its answer ends.
   * @returns {AbortController | null}
   */
  acquire() {
    if (this.running) return null;
    this.running = new AbortController();
    this.changed();
    return this.running;
  }

  release() {
    this.running = null;
    this.changed();
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Stops the answer being written, if any. */
  abort() {
    this.running?.abort();
  }

  /** Resolves once no answer is being written (at once if none is). @returns {Promise<void>} */
  whenIdle() {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(() => resolve()));
  }

  /** @param {() => void} listener */
  onChange(listener) {
    this.listeners.add(listener);
  }

  changed() {
    for (const l of this.listeners) l();
  }
}
