// conversation.js: the messages of the conversation in this tab. Kept in sessionStorage (this tab only, gone when
// it closes, never sent anywhere) so that reloading for an app update does not lose the conversation.

import { asUse } from './prompts.js';

/** @typedef {import('./prompts.js').Use} Use */
/** @typedef {'stopped' | 'length'} End  how an unfinished answer ended */
/** @typedef {{role: 'user' | 'assistant', content: string, end?: End}} Message  end: only on an unfinished answer */

const KEY = 'fieldllm-conversation';

export class Conversation {
  /** @param {Storage | null} storage */
  constructor(storage) {
    this.storage = storage;
    /** @type {Use} */
    this.use = 'fault';
    /** @type {Message[]} */
    this.messages = [];
  }

  restore() {
    try {
      const saved = JSON.parse(this.storage?.getItem(KEY) ?? 'null');
      if (saved && Array.isArray(saved.messages)) {
        this.use = asUse(saved.use);
        this.messages = saved.messages.filter((/** @type {any} */ m) =>
          (m.role === 'user' || m.role === 'assistant') && typeof m.content === 'string')
          .map((/** @type {any} */ m) => (m.end === 'stopped' || m.end === 'length'
            ? { role: m.role, content: m.content, end: m.end } : { role: m.role, content: m.content }));
      }
    } catch {
      // a damaged entry: start empty
    }
  }

  save() {
    try {
      this.storage?.setItem(KEY, JSON.stringify({ use: this.use, messages: this.messages }));
    } catch {
      // storage full or disabled: the conversation still works, it just does not survive a reload
    }
  }

  /** @param {Use} use */
  reset(use = this.use) {
    this.use = use;
    this.messages = [];
    this.save();
  }
}

/**
 * What the transcript says under an unfinished answer.
 * @param {End} end @param {number} maxTokens
 */
export function endNote(end, maxTokens) {
  return end === 'length'
    ? `Cut at the token limit (${maxTokens} tokens): this answer is incomplete.`
    : 'Stopped: this answer is incomplete.';
}
