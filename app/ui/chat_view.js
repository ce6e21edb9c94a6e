// chat_view.js: the conversation on screen. Streams each answer into the transcript as the engine writes it, lets
// the user stop it, and says so under an answer that was stopped or cut at the token limit (it must not look
// finished). One answer runs at a time across the chat and the task screens (answer_lock.js): an engine switch or
// an app reload waits for it.

import { Conversation, endNote } from './conversation.js';
import { isAbort, messageOf, nameOf } from './errors.js';
import { USES, asUse } from './prompts.js';
import { byId } from './view.js';

/**
 * What answers: the engine on this device's GPU (EngineClient) or the fallback server (ServerEngine), same calls.
 * @typedef {import('../engine/index.js').EngineClient | import('../engine/index.js').ServerEngine} ChatEngine
 */

/** @param {unknown} e */
function answerError(e) {
  if (nameOf(e) === 'ContextOverflowError') {
    return 'The conversation is longer than the model can hold. Start a new conversation.';
  }
  if (nameOf(e) === 'DeviceLostError') return `${messageOf(e)} Reload the page.`;
  return `The answer failed: ${messageOf(e)}`;
}

export class ChatView {
  /**
   * @param {Document} doc
   * @param {{maxTokens: number}} opts
   * @param {import('./answer_lock.js').AnswerLock} lock  shared with the task screens
   */
  constructor(doc, opts, lock) {
    this.doc = doc;
    this.opts = opts;
    this.lock = lock;
    /** @type {ChatEngine | null} */
    this.engine = null;
    this.conversation = new Conversation(globalThis.sessionStorage ?? null);
    /** @type {AbortController | null} this view's answer being written */
    this.running = null;
    this.transcript = byId(doc, 'transcript');
    this.form = /** @type {HTMLFormElement} */ (byId(doc, 'chat-form'));
    this.input = /** @type {HTMLTextAreaElement} */ (byId(doc, 'chat-input'));
    this.send = /** @type {HTMLButtonElement} */ (byId(doc, 'chat-send'));
    this.stop = /** @type {HTMLButtonElement} */ (byId(doc, 'chat-stop'));
    this.newButton = /** @type {HTMLButtonElement} */ (byId(doc, 'chat-new'));
    this.hint = byId(doc, 'use-hint');
    this.radios = /** @type {HTMLInputElement[]} */ (Array.from(doc.querySelectorAll('input[name="use"]')));

    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = this.input.value.trim();
      if (text && !this.lock.busy && this.engine) {
        this.input.value = '';
        this.ask(text);
      }
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.stop.addEventListener('click', () => this.running?.abort());
    lock.onChange(() => this.updateControls());
    this.newButton.addEventListener('click', () => this.startOver(this.conversation.use));
    for (const r of this.radios) {
      r.addEventListener('change', () => {
        if (r.checked) this.startOver(asUse(r.value));
      });
    }
    this.conversation.restore();
    this.renderAll();
  }

  /** @param {ChatEngine | null} engine */
  setEngine(engine) {
    this.engine = engine;
    this.updateControls();
  }

  /** @param {import('./prompts.js').Use} use */
  startOver(use) {
    this.running?.abort();
    this.conversation.reset(use);
    this.engine?.resetCache();
    this.renderAll();
    this.input.focus();
  }

  renderAll() {
    this.transcript.replaceChildren();
    for (const m of this.conversation.messages) {
      const body = this.addMessage(m.role, m.content, true);
      if (m.end) this.markEnd(/** @type {HTMLElement} */ (body.parentElement), m.end);
    }
    for (const r of this.radios) r.checked = r.value === this.conversation.use;
    this.hint.textContent = USES[this.conversation.use].hint;
    this.updateControls();
  }

  updateControls() {
    const mine = this.running !== null;
    this.send.disabled = this.lock.busy || !this.engine;
    this.input.disabled = !this.engine;
    this.stop.hidden = !mine;
    this.transcript.setAttribute('aria-busy', String(mine));
  }

  /**
   * Says under an answer that it is not finished.
   * @param {HTMLElement} item @param {import('./conversation.js').End} end
   */
  markEnd(item, end) {
    item.dataset.end = end;
    const note = this.doc.createElement('p');
    note.className = 'end-note';
    note.textContent = endNote(end, this.opts.maxTokens);
    item.append(note);
  }

  /**
   * @param {'user' | 'assistant'} role @param {string} text @param {boolean} done
   * @returns {HTMLParagraphElement} the element holding the text
   */
  addMessage(role, text, done) {
    const item = this.doc.createElement('li');
    item.className = `msg ${role}`;
    item.dataset.done = String(done);
    const who = this.doc.createElement('span');
    who.className = 'who';
    who.textContent = role === 'user' ? 'You' : 'Assistant';
    const body = this.doc.createElement('p');
    body.className = 'text';
    body.textContent = text; // text, never HTML: model output cannot inject markup
    item.append(who, body);
    this.transcript.append(item);
    item.scrollIntoView({ block: 'end' });
    return body;
  }

  /** @param {string} question */
  async ask(question) {
    const engine = this.engine;
    if (!engine) return;
    const conv = this.conversation;
    conv.messages.push({ role: 'user', content: question });
    conv.save();
    this.addMessage('user', question, true);
    const body = this.addMessage('assistant', '', false);
    const item = /** @type {HTMLElement} */ (body.parentElement);
    const controller = this.lock.acquire();
    if (!controller) return;
    this.running = controller;
    this.updateControls();
    let answer = '';
    /** @type {import('./conversation.js').End | null} */
    let end = null;
    try {
      const stream = await engine.chat.completions.create({
        messages: [{ role: 'system', content: USES[conv.use].system },
          ...conv.messages.map((m) => ({ role: m.role, content: m.content }))],
        stream: true, max_tokens: this.opts.maxTokens, signal: controller.signal,
      });
      for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta?.content;
        if (delta) {
          answer += delta;
          body.textContent = answer;
        }
        if (chunk.choices[0]?.finish_reason === 'length') end = 'length';
      }
    } catch (e) {
      if (isAbort(e)) {
        item.dataset.stopped = 'true';
        end = 'stopped';
      } else {
        item.classList.add('failed');
        body.textContent = answer ? `${answer}\n\n${answerError(e)}` : answerError(e);
      }
    } finally {
      if (end) this.markEnd(item, end);
      if (answer) {
        conv.messages.push(end ? { role: 'assistant', content: answer, end } : { role: 'assistant', content: answer });
      } else {
        conv.messages.pop(); // no answer: the question goes too, so the next turn is not two user messages
      }
      conv.save();
      item.dataset.done = 'true';
      this.running = null;
      this.lock.release();
    }
  }
}
