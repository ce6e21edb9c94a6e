// chat-template.js: the package's chat template (Jinja) rendered with @huggingface/jinja the way
// model_prep/chat_template.py renders it with Jinja2: messages checked first, trim_blocks + lstrip_blocks,
// add_generation_prompt, bos_token / eos_token as strings, raise_exception() -> InputError.

import { FormatError, InputError } from './errors.js';

/** @typedef {import('./vendor.js').Vendor} Vendor */
/** @typedef {{role: 'system' | 'user' | 'assistant', content: string}} Message */

export const ROLES = Object.freeze(['system', 'user', 'assistant']);

/**
 * Messages must be a non-empty list of {role: system|user|assistant, content: string}; other fields are dropped.
 * @param {unknown} messages
 * @returns {Message[]}
 */
export function checkMessages(messages) {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new InputError('messages must be a non-empty list of {role, content} objects');
  }
  return messages.map((m, i) => {
    if (!m || typeof m !== 'object' || typeof m.content !== 'string' || !ROLES.includes(m.role)) {
      throw new InputError(`message ${i} must be {'role': one of ${ROLES.join(', ')}, 'content': a string}`);
    }
    return { role: m.role, content: m.content };
  });
}

/** @param {string} message */
function refuse(message) {
  throw new InputError(`chat template refused the conversation: ${message}`);
}

/** The name raise_exception() is given in the parsed template, where our own function answers to it. */
const RAISE = '__fieldllm_raise_exception__';

/**
 * Points every identifier `raise_exception` of a parsed template at RAISE. The library defines raise_exception
 * itself (throwing a plain Error, like any template bug) and will not let a render variable replace it; renaming in
 * the tree touches identifiers only, never string literals.
 * @param {unknown} node
 */
function renameRaise(node) {
  if (Array.isArray(node)) {
    for (const child of node) renameRaise(child);
  } else if (node && typeof node === 'object') {
    const n = /** @type {Record<string, unknown>} */ (node);
    if (n.type === 'Identifier' && n.value === 'raise_exception') n.value = RAISE;
    for (const value of Object.values(n)) if (value && typeof value === 'object') renameRaise(value);
  }
}

export class ChatTemplate {
  /**
   * @param {Vendor['Template']} Template  the class from @huggingface/jinja (see vendor.js)
   * @param {string} source  manifest.chat_template
   * @param {{bosToken?: string, eosToken?: string}} [tokens]  the token strings the template may print
   */
  constructor(Template, source, { bosToken = '', eosToken = '' } = {}) {
    try {
      this.template = new Template(source);
      renameRaise(this.template.parsed);
    } catch (e) {
      throw new FormatError(`the package's chat template does not compile (${/** @type {Error} */ (e).message}); ` +
        'prepare the package again');
    }
    this.bosToken = bosToken;
    this.eosToken = eosToken;
  }

  /**
   * The prompt text for a conversation.
   * @param {unknown} messages
   * @param {{addGenerationPrompt?: boolean}} [opts]
   */
  render(messages, { addGenerationPrompt = true } = {}) {
    const checked = checkMessages(messages);
    try {
      return this.template.render({
        messages: checked, bos_token: this.bosToken, eos_token: this.eosToken,
        add_generation_prompt: addGenerationPrompt, [RAISE]: refuse,
      });
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(`the chat template failed on this conversation (${/** @type {Error} */ (e).message})`);
    }
  }
}
