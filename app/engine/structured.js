// structured.js: OpenAI's structured-output fields -> a grammar, and tool calls in and out of the model's text; the
// same rules, messages and text as model_prep/reference/structured.py (docs there):
//   response_format json_schema / json_object -> one JSON value of the schema; text or absent -> free text.
//   tools + tool_choice: "none" hides them; "auto" (default) = free text in which calls may appear; "required" or a
//   named function = calls and nothing else. A call is <tool_call>\n{"name": N, "arguments": {...}}\n</tool_call>,
//   its arguments held to the function's parameters by the grammar; one call unless parallel_tool_calls is true.
//   Earlier calls and results (assistant tool_calls, role "tool") are written back in that same form.

import { EngineError, InputError } from './errors.js';
import { GrammarSpec, PyFloat, checkSchema, isPlainObject, parsePyJson, pyJson, pyRepr } from './grammar.js';

export const CALL_OPEN = '<tool_call>';
export const CALL_CLOSE = '</tool_call>';
// Python's whitespace (str.isspace, and re's \s): JS's \s differs (it has U+FEFF, lacks U+001C-U+001F and U+0085)
const WS = '[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const CALL = new RegExp(`<tool_call>${WS}*(\\{[\\s\\S]*?\\})${WS}*</tool_call>`, 'g');
const STRIP = new RegExp(`^${WS}+|${WS}+$`, 'g');

/**
 * @typedef {object} Tool  an OpenAI tool definition
 * @property {'function'} type
 * @property {{name: string, description?: string, parameters?: Record<string, any>, strict?: boolean}} function
 */
/**
 * @typedef {object} ToolCall  OpenAI's message.tool_calls[i]
 * @property {string} id
 * @property {'function'} type
 * @property {{name: string, arguments: string}} function  arguments: JSON text
 */
/**
 * @typedef {object} Structure  what one request asks of the output's shape
 * @property {GrammarSpec | null} grammar
 * @property {Tool[]} tools     shown to the model (empty for tool_choice "none")
 * @property {boolean} callsTools  the output may hold tool calls (parse them out)
 */

/**
 * The grammar and the tools to show, from an OpenAI request's fields (structured.py from_request).
 * @param {{response_format?: any, tools?: any, tool_choice?: any, parallel_tool_calls?: any}} request
 * @returns {Structure}
 */
export function fromRequest({ response_format: responseFormat = null, tools = null, tool_choice: toolChoice = null,
  parallel_tool_calls: parallel = null }) {
  const list = tools ? [...tools] : [];
  if (responseFormat && ![undefined, null, 'text'].includes(responseFormat.type) && list.length && toolChoice !== 'none') {
    throw new InputError("response_format and tools cannot be combined; send one of them (or tool_choice 'none')");
  }
  if (list.length) return toolStructure(list, toolChoice, parallel === true);
  if (![null, undefined, 'none', 'auto'].includes(toolChoice)) {
    throw new InputError('tool_choice needs tools: send the functions the model may call');
  }
  return { grammar: responseFormatGrammar(responseFormat), tools: [], callsTools: false };
}

/**
 * @param {any} responseFormat
 * @returns {GrammarSpec | null}
 */
export function responseFormatGrammar(responseFormat) {
  const kind = (responseFormat ?? {}).type ?? 'text';
  if (kind === 'text') return null;
  if (kind === 'json_object') return GrammarSpec.jsonSchema({ type: 'object' });
  if (kind === 'json_schema') {
    const spec = responseFormat.json_schema || {};
    const schema = isPlainObject(spec) ? spec.schema ?? { type: 'object' } : null;
    if (!(isPlainObject(schema) || typeof schema === 'boolean')) {
      throw new InputError('response_format.json_schema.schema must be a JSON Schema object');
    }
    return GrammarSpec.jsonSchema(schema);
  }
  throw new InputError(`response_format type ${pyRepr(kind)} is not one of text, json_object, json_schema`);
}

/**
 * @param {any[]} tools
 * @param {any} choice
 * @param {boolean} parallel
 * @returns {Structure}
 */
function toolStructure(tools, choice, parallel) {
  /** @type {string[]} */
  const names = [];
  tools.forEach((tool, i) => {
    const fn = isPlainObject(tool) && tool.type === 'function' ? tool.function : null;
    if (!isPlainObject(fn) || typeof fn.name !== 'string' || !fn.name) {
      // word for word structured.py's message (its last braces are doubled there: a literal, not an f-string)
      throw new InputError(`tools.${i} must be {'type': 'function', 'function': {'name': ..., 'parameters': ...}}`);
    }
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(fn.name)) {
      throw new InputError(`tools.${i}.function.name must be 1-64 letters, digits, _ or -`);
    }
    checkSchema(fn.parameters ?? { type: 'object' }, `tools.${i}.function.parameters`);
    names.push(fn.name);
  });
  if (new Set(names).size !== names.length) throw new InputError('tools name the same function twice');
  if (choice === 'none') return { grammar: null, tools: [], callsTools: false };
  let chosen = names;
  if (isPlainObject(choice)) {
    const name = isPlainObject(choice.function) ? choice.function.name : undefined;
    if (!names.includes(/** @type {string} */ (name))) {
      throw new InputError(`tool_choice names the function ${pyRepr(name)}, which is not among the tools`);
    }
    chosen = [/** @type {string} */ (name)];
  } else if (![null, undefined, 'auto', 'required'].includes(choice)) {
    throw new InputError("tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'function': " +
      "{'name': ...}}");
  }
  /** @type {Map<string, any>} */
  const byName = new Map(tools.map((t) => [t.function.name, t.function]));
  const tags = chosen.map((n) => ({
    type: 'tag', begin: `${CALL_OPEN}\n{"name": "${n}", "arguments": `,
    content: { type: 'json_schema', json_schema: byName.get(n).parameters ?? { type: 'object' } },
    end: `}\n${CALL_CLOSE}`,
  }));
  const format = [null, undefined, 'auto'].includes(choice)
    ? { type: 'triggered_tags', triggers: [CALL_OPEN], tags, at_least_one: false, stop_after_first: !parallel }
    : { type: 'tags_with_separator', tags, separator: '\n', at_least_one: true, stop_after_first: !parallel };
  return { grammar: GrammarSpec.structuralTag({ type: 'structural_tag', format }), tools, callsTools: true };
}

// --- the model's text <-> OpenAI's tool_calls -------------------------------------------------------------------

export function newCallId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return `call_${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * A call's JSON body -> OpenAI's tool call (arguments written as Python's json.dumps writes them), or null.
 * @param {string} body
 * @returns {ToolCall | null}
 */
export function parseCall(body) {
  let value;
  try {
    value = parsePyJson(body);
  } catch {
    return null;
  }
  if (!(value instanceof Map) || typeof value.get('name') !== 'string') return null;
  const args = value.has('arguments') ? value.get('arguments') : new Map();
  return {
    id: newCallId(), type: 'function',
    function: { name: /** @type {string} */ (value.get('name')), arguments: pyJson(args, { ensureAscii: false }) },
  };
}

/**
 * (the text outside calls, stripped; the calls). A call whose JSON does not parse stays in the text.
 * @param {string} text
 * @returns {{content: string, calls: ToolCall[]}}
 */
export function splitToolCalls(text) {
  /** @type {ToolCall[]} */
  const calls = [];
  const rest = [];
  let last = 0;
  for (const m of text.matchAll(CALL)) {
    const call = parseCall(m[1]);
    if (call === null) continue;
    rest.push(text.slice(last, m.index));
    last = /** @type {number} */ (m.index) + m[0].length;
    calls.push(call);
  }
  rest.push(text.slice(last));
  return { content: pyStrip(rest.join('')), calls };
}

/** Python's str.strip(): Unicode whitespace at both ends. @param {string} s */
function pyStrip(s) {
  return s.replace(STRIP, '');
}

/** Splits streamed text into content pieces and whole tool calls, holding back what may be a call's start. */
export class CallStream {
  constructor() {
    this.buffer = '';
  }

  /**
   * @param {string} text
   * @returns {(string | ToolCall)[]}
   */
  push(text) {
    this.buffer += text;
    /** @type {(string | ToolCall)[]} */
    const out = [];
    for (;;) {
      const start = this.buffer.indexOf(CALL_OPEN);
      if (start < 0) {
        const keep = partialSuffix(this.buffer, CALL_OPEN);
        if (this.buffer.length > keep) {
          out.push(this.buffer.slice(0, this.buffer.length - keep));
          this.buffer = this.buffer.slice(this.buffer.length - keep);
        }
        return out;
      }
      if (start > 0) {
        out.push(this.buffer.slice(0, start));
        this.buffer = this.buffer.slice(start);
      }
      const end = this.buffer.indexOf(CALL_CLOSE);
      if (end < 0) return out;
      const body = this.buffer.slice(CALL_OPEN.length, end);
      const call = parseCall(pyStrip(body));
      const after = this.buffer.slice(end + CALL_CLOSE.length);
      out.push(call ?? this.buffer.slice(0, end + CALL_CLOSE.length));
      this.buffer = call ? after.replace(/^\n+/, '') : after;
    }
  }

  /** @returns {string[]} what is held back, at the end */
  flush() {
    const rest = this.buffer;
    this.buffer = '';
    return rest ? [rest] : [];
  }
}

/** @param {string} text @param {string} marker */
function partialSuffix(text, marker) {
  for (let n = Math.min(marker.length - 1, text.length); n > 0; n--) {
    if (text.endsWith(marker.slice(0, n))) return n;
  }
  return 0;
}

/**
 * OpenAI messages with tool calls and results -> plain {role, content} turns in the call form above.
 * @param {{role?: unknown, content?: unknown, tool_calls?: any[] | null}[]} messages
 * @returns {{role: string, content: string}[]}
 */
export function historyMessages(messages) {
  return messages.map((m) => {
    const role = m.role;
    const content = /** @type {string} */ (m.content || '');
    if (role === 'assistant' && m.tool_calls && m.tool_calls.length) {
      const parts = content ? [content] : [];
      for (const call of m.tool_calls) {
        const fn = call.function ?? {};
        /** @type {import('./grammar.js').PyJson} */
        let args;
        try {
          args = parsePyJson(fn.arguments || '{}');
        } catch { // written back as the string it is: the model sees what was sent
          args = fn.arguments ?? null;
        }
        const written = pyJson(new Map([['name', fn.name ?? null], ['arguments', args]]));
        parts.push(`${CALL_OPEN}\n${written}\n${CALL_CLOSE}`);
      }
      return { role: 'assistant', content: parts.join('\n') };
    }
    if (role === 'tool') return { role: 'user', content: `<tool_response>\n${content}\n</tool_response>` };
    return { role: String(role), content };
  });
}

// --- the second lock: a finished answer is checked against what was asked (app/server/answer.py) ----------------

/**
 * JSON Schema's equality: numbers by value (1 equals 1.0), true is not 1, objects by keys.
 * @param {import('./grammar.js').PyJson} a @param {import('./grammar.js').PyJson} b
 * @returns {boolean}
 */
function jsonEqual(a, b) {
  const na = numberOf(a);
  const nb = numberOf(b);
  if (na !== null || nb !== null) return na !== null && nb !== null && na === nb;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  const oa = objectOf(a);
  const ob = objectOf(b);
  if (oa || ob) {
    return !!oa && !!ob && oa.size === ob.size && [...oa].every(([k, v]) => ob.has(k) && jsonEqual(v, /** @type {any} */ (ob.get(k))));
  }
  return a === b;
}

/** @param {unknown} v @returns {number | null} a JSON number's value (never a boolean's) */
function numberOf(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof PyFloat) return v.value;
  return null;
}

/** @param {unknown} v @returns {Map<string, any> | null} */
function objectOf(v) {
  if (v instanceof Map) return v;
  if (isPlainObject(v)) return new Map(Object.entries(v));
  return null;
}

/** @param {unknown} v @param {string} type */
function hasType(v, type) {
  const n = numberOf(v);
  switch (type) {
    case 'null': return v === null;
    case 'boolean': return typeof v === 'boolean';
    case 'string': return typeof v === 'string';
    case 'array': return Array.isArray(v);
    case 'object': return objectOf(v) !== null;
    case 'number': return n !== null;
    case 'integer': return n !== null && Number.isInteger(n);
    default: return false;
  }
}

/**
 * Why `value` does not fit `schema` (the keywords SCHEMA_KEYWORDS allows), or null when it does.
 * @param {import('./grammar.js').PyJson} value
 * @param {any} schema
 * @param {any} [root]  the schema $ref resolves against
 * @param {string} [at]  where in the value
 * @returns {string | null}
 */
export function schemaError(value, schema, root = schema, at = '$') {
  if (schema === true) return null;
  if (schema === false) return `${at}: no value is allowed here`;
  if (!isPlainObject(schema)) return null;
  if (typeof schema.$ref === 'string') {
    const target = schema.$ref === '#' ? root : schema.$ref.startsWith('#/')
      ? schema.$ref.slice(2).split('/').reduce((node, part) =>
        (isPlainObject(node) ? node[part.replaceAll('~1', '/').replaceAll('~0', '~')] : undefined), root)
      : undefined;
    if (target === undefined) return `${at}: cannot resolve ${schema.$ref}`;
    const e = schemaError(value, target, root, at);
    if (e) return e;
  }
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => hasType(value, t))) return `${at}: ${pyJson(value, { ensureAscii: false })} is not of type ${types.join(' or ')}`;
  }
  if (Array.isArray(schema.enum) && !schema.enum.some((/** @type {any} */ x) => jsonEqual(value, x))) {
    return `${at}: ${pyJson(value, { ensureAscii: false })} is not one of the enum`;
  }
  if ('const' in schema && !jsonEqual(value, /** @type {any} */ (schema).const)) return `${at}: ${pyJson(value, { ensureAscii: false })} is not the const`;
  if (Array.isArray(schema.anyOf) && !schema.anyOf.some((/** @type {any} */ s) => schemaError(value, s, root, at) === null)) {
    return `${at}: fits none of anyOf`;
  }
  const n = numberOf(value);
  if (n !== null) {
    if (typeof schema.minimum === 'number' && n < schema.minimum) return `${at}: ${n} < minimum ${schema.minimum}`;
    if (typeof schema.maximum === 'number' && n > schema.maximum) return `${at}: ${n} > maximum ${schema.maximum}`;
    if (typeof schema.exclusiveMinimum === 'number' && n <= schema.exclusiveMinimum) return `${at}: ${n} <= exclusiveMinimum`;
    if (typeof schema.exclusiveMaximum === 'number' && n >= schema.exclusiveMaximum) return `${at}: ${n} >= exclusiveMaximum`;
  }
  if (typeof value === 'string') {
    const length = [...value].length; // code points, as JSON Schema counts
    if (typeof schema.minLength === 'number' && length < schema.minLength) return `${at}: shorter than ${schema.minLength}`;
    if (typeof schema.maxLength === 'number' && length > schema.maxLength) return `${at}: longer than ${schema.maxLength}`;
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) return `${at}: fewer than ${schema.minItems} items`;
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) return `${at}: more than ${schema.maxItems} items`;
    if (schema.items !== undefined) {
      for (let i = 0; i < value.length; i++) {
        const e = schemaError(value[i], schema.items, root, `${at}[${i}]`);
        if (e) return e;
      }
    }
  }
  const object = objectOf(value);
  if (object) {
    const props = isPlainObject(schema.properties) ? schema.properties : {};
    for (const name of Array.isArray(schema.required) ? schema.required : []) {
      if (!object.has(name)) return `${at}: ${pyRepr(name)} is a required property`;
    }
    for (const [key, v] of object) {
      const sub = key in props ? props[key] : schema.additionalProperties;
      if (sub === undefined) continue;
      if (sub === false) return `${at}: additional property ${pyRepr(key)} is not allowed`;
      const e = schemaError(v, sub, root, `${at}.${key}`);
      if (e) return e;
    }
  }
  return null;
}

/**
 * A complete structured answer must parse and fit its schema, and each tool call its function; otherwise it is
 * withheld with an EngineError (the server's 500 "invalid_output"), never shown as if it fitted.
 * @param {string} text  the whole answer
 * @param {Structure} structure
 * @param {ToolCall[]} calls  the calls split out of it (tool requests)
 */
export function checkAnswer(text, structure, calls) {
  if (structure.callsTools) {
    /** @type {Map<string, any>} */
    const params = new Map(structure.tools.map((t) => [t.function.name, t.function.parameters ?? { type: 'object' }]));
    for (const call of calls) {
      let why = params.has(call.function.name) ? null : `it calls ${pyRepr(call.function.name)}, which is not among the tools`;
      if (!why) {
        try {
          why = schemaError(parsePyJson(call.function.arguments), params.get(call.function.name));
        } catch (e) {
          why = /** @type {Error} */ (e).message;
        }
      }
      if (why) throw new EngineError(`a tool call does not fit its function (${why}); it was withheld`);
    }
    return;
  }
  const g = structure.grammar;
  if (!g || g.kind !== 'json_schema') return;
  let why;
  try {
    why = schemaError(parsePyJson(text), JSON.parse(g.body));
  } catch (e) {
    why = /** @type {Error} */ (e).message;
  }
  if (why) throw new EngineError(`the answer does not fit the requested schema (${why}); it was withheld`);
}
