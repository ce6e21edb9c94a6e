// chat-template.js: the package's chat template (Jinja) rendered with @huggingface/jinja the way
// model_prep/reference/chat_template.py renders it with Jinja2: messages checked first, trim_blocks + lstrip_blocks,
// add_generation_prompt, bos_token / eos_token as strings, raise_exception() -> InputError, and `tojson` as
// transformers' (keys in order, no ASCII or HTML escaping). Tools (OpenAI definitions) go to the template if it renders them, else into the
// generic block at the end of the system message (model_prep/reference/chat_template.py, same text).

import { FormatError, InputError } from './errors.js';
import { PyFloat, pyJson } from './grammar.js';

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

/** Whether the template renders a `tools` list itself (Qwen2.5's does; SmolLM2's does not). @param {string} source */
export function supportsTools(source) {
  return source.includes('tools');
}

/** The generic tool block's first line (chat_template.py TOOLS_INTRO). */
export const TOOLS_INTRO = 'You can call functions. To call one, answer with <tool_call>{"name": NAME, "arguments": ' +
  'ARGUMENTS}</tool_call> where ARGUMENTS is a JSON object that fits the function\'s parameters. The functions:';

/** @param {any[]} tools */
export function genericToolsBlock(tools) {
  const lines = [TOOLS_INTRO];
  for (const tool of tools) {
    lines.push(pyJson(tool !== null && typeof tool === 'object' && 'function' in tool ? tool.function : tool,
      { ensureAscii: false, sortKeys: false }));
  }
  return lines.join('\n');
}

/**
 * `messages` with the generic tool block at the end of the system message (added first if there is none).
 * @param {Message[]} messages
 * @param {any[]} tools
 * @returns {Message[]}
 */
export function withToolsBlock(messages, tools) {
  const block = genericToolsBlock(tools);
  if (messages.length && messages[0].role === 'system') {
    return [{ role: 'system', content: `${messages[0].content}\n\n${block}` }, ...messages.slice(1)];
  }
  return [{ role: 'system', content: block }, ...messages];
}

/**
 * A template value (@huggingface/jinja's runtime values, or what they hold) -> a JSON value for pyJson.
 * @param {any} v
 * @returns {import('./grammar.js').PyJson}
 */
function fromRuntime(v) {
  if (v !== null && typeof v === 'object' && typeof v.type === 'string' && 'value' in v) {
    if (v.type === 'FloatValue') return new PyFloat(v.value);
    if (v.type === 'UndefinedValue') return null;
    return fromRuntime(v.value);
  }
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [String(k), fromRuntime(x)]));
  if (Array.isArray(v)) return v.map(fromRuntime);
  return v ?? null;
}

/**
 * transformers' `tojson` filter (model_prep/reference/chat_template.py `_tojson`): json.dumps(ensure_ascii=False), keys in order.
 * @param {unknown} value
 */
function transformersToJson(value) {
  return pyJson(fromRuntime(value), { sortKeys: false, ensureAscii: false });
}

/** @param {string} message */
function refuse(message) {
  throw new InputError(`chat template refused the conversation: ${message}`);
}

/** The name raise_exception() is given in the parsed template, where our own function answers to it. */
const RAISE = '__fieldllm_raise_exception__';
/** The function a plain `x | tojson` filter becomes in the parsed template. */
const TOJSON = '__fieldllm_tojson__';

/**
 * Points every identifier `raise_exception` of a parsed template at RAISE, and every plain `x | tojson` at TOJSON.
 * The library defines raise_exception itself (throwing a plain Error, like any template bug) and will not let a
 * render variable replace it; renaming in the tree touches identifiers only, never string literals.
 * @param {unknown} node
 */
function renameRaise(node) {
  if (Array.isArray(node)) {
    for (const child of node) renameRaise(child);
  } else if (node && typeof node === 'object') {
    const n = /** @type {Record<string, unknown>} */ (node);
    if (n.type === 'Identifier' && n.value === 'raise_exception') n.value = RAISE;
    const filter = /** @type {Record<string, unknown> | undefined} */ (n.filter);
    if (n.type === 'FilterExpression' && filter?.type === 'Identifier' && filter.value === 'tojson') {
      // ours writes exactly what Python's json.dumps writes (floats, separators): call it, not the library's
      Object.assign(n, { type: 'CallExpression', callee: { type: 'Identifier', value: TOJSON }, args: [n.operand] });
    }
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
    this.rendersTools = supportsTools(source);
  }

  /**
   * The prompt text for a conversation; `tools` (OpenAI tool definitions) go to the template if it renders them,
   * else into the generic block of the system message.
   * @param {unknown} messages
   * @param {{addGenerationPrompt?: boolean, tools?: any[] | null}} [opts]
   */
  render(messages, { addGenerationPrompt = true, tools = null } = {}) {
    let checked = checkMessages(messages);
    /** @type {Record<string, unknown>} */
    const extra = {};
    if (tools && tools.length && this.rendersTools) extra.tools = tools;
    else if (tools && tools.length) checked = withToolsBlock(checked, tools);
    try {
      return this.template.render({
        messages: checked, bos_token: this.bosToken, eos_token: this.eosToken,
        add_generation_prompt: addGenerationPrompt, [RAISE]: refuse, [TOJSON]: transformersToJson, ...extra,
      });
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw new InputError(`the chat template failed on this conversation (${/** @type {Error} */ (e).message})`);
    }
  }
}
