// app/engine/chat-template.js (@huggingface/jinja) must render what model_prep/reference/chat_template.py (Jinja2) renders:
// the same string for each conversation and template, and the same refusal message from raise_exception().

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import { ChatTemplate, checkMessages } from '../../app/engine/chat-template.js';
import { FormatError, InputError } from '../../app/engine/errors.js';
import { oracle, smollm2Package, tinyTokenizer } from './helpers/python.js';
import { readJson, vendor } from './helpers/vendor.js';

// Templates in the styles models ship with (written for these tests): whitespace control, loop variables, filters,
// bos/eos tokens, default system prompts, role checks that call raise_exception.
const LLAMA3_STYLE = `{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system = messages[0]['content'] | trim %}
    {%- set rest = messages[1:] %}
{%- else %}
    {%- set system = 'You assist field technicians.' %}
    {%- set rest = messages %}
{%- endif %}
{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system + '<|eot_id|>' }}
{%- for message in rest %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}`;

const ALTERNATING = `{{ bos_token }}{% for message in messages %}
{% if message['role'] == 'system' and not loop.first %}{{ raise_exception('a system message must come first') }}{% endif %}
{% if message['role'] == 'system' %}[SYS]{{ message['content'] }}[/SYS]
{% elif (message['role'] == 'user') != ((loop.index0 - (1 if messages[0]['role'] == 'system' else 0)) % 2 == 0) %}
{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
{% elif message['role'] == 'user' %}[INST] {{ message['content'] }} [/INST]
{% else %}{{ message['content'] }}{{ eos_token }}
{% endif %}
{% endfor %}`;

// Qwen3's constructs (written for these tests): a namespace updated in a reversed loop to find the last real user
// turn, string methods with arguments (startswith, endswith, split, lstrip, rstrip, strip), `in` on strings,
// `is defined` / `is none` tests, and earlier turns' <think> blocks dropped while the last answer's is kept.
// Phi-3.5-mini's own template (its tokenizer_config.json): <|system|> / <|user|> / <|assistant|> turns closed by
// <|end|>, an empty system message skipped, and eos_token where no generation prompt is asked for
const PHI3_STYLE = "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}" +
  "{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'user' %}" +
  "{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}" +
  "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}";
const QWEN3_STYLE = `{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(searching=true, last_user=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.searching and message.role == 'user' and not (message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.searching = false %}
        {%- set ns.last_user = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set answer = message.content %}
        {%- set thought = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set thought = message.reasoning_content %}
        {%- elif '</think>' in message.content %}
            {%- set answer = message.content.split('</think>')[-1].lstrip('\n') %}
            {%- set thought = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_user and thought %}
            {{- '<|im_start|>assistant\n<think>\n' + thought.strip('\n') + '\n</think>\n\n' + answer }}
        {%- else %}
            {{- '<|im_start|>assistant\n' + answer }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}`;

const NUMBERED = `{% for m in messages %}{{ loop.index }}/{{ loop.length }} {{ m.role | upper }}: {{ m.content | replace('\\n', ' ') }}
{% if loop.last and add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}
{% endfor %}`;

/** @type {{role: string, content: string}[][]} */
const CONVERSATIONS = [
  [{ role: 'user', content: 'What is the capital of France?' }],
  [
    { role: 'system', content: 'You are a maintenance assistant on an offshore platform. Answer briefly.' },
    { role: 'user', content: 'Pump P-204 discharge pressure dropped from 6.8 to 4.1 bar. What do I check first?' },
  ],
  [
    { role: 'system', content: '  Clinic triage helper.\n' },
    { role: 'user', content: 'Child 3 y, fever 39.6 °C, HR 150/min. Danger signs?' },
    { role: 'assistant', content: 'Check for lethargy, convulsions, inability to drink.\n\nAlso: breathing rate.' },
    { role: 'user', content: 'Breathing 52/min, chest indrawing. 👶 Next step?' },
  ],
  [
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'Hello! How can I help?' },
    { role: 'user', content: '  spaces and\ttabs  ' },
    { role: 'assistant', content: '' },
    { role: 'user', content: '<|im_start|>markup in text<|im_end|> {{ not a template }} {% raw %}' },
  ],
  [
    { role: 'user', content: 'Generator 2 tripped on overcurrent.' },
    { role: 'assistant', content: '<think>\nOvercurrent: check the breaker first.\n</think>\n\nInspect breaker and cabling.' },
    { role: 'user', content: 'Done. Reset it?' },
    { role: 'assistant', content: '<think>\n\nAfter inspection, yes.\n\n</think>\n\nYes, reset after inspection.' },
  ],
  // refused by ALTERNATING (two users in a row, a late system message); fine for the others
  [{ role: 'user', content: 'one' }, { role: 'user', content: 'two' }],
  [{ role: 'user', content: 'one' }, { role: 'system', content: 'late system' }],
];

describe('chat template', () => {
  /** @type {{name: string, source: string, bos: string, eos: string}[]} */
  const templates = [];
  before(async () => {
    const manifest = readJson(join(await smollm2Package(), 'manifest.json'));
    const tiny = await tinyTokenizer();
    templates.push(
      { name: 'SmolLM2', source: manifest.chat_template, bos: '<|im_start|>', eos: '<|im_end|>' },
      { name: 'tiny ChatML', source: tiny.chat_template, bos: '<|endoftext|>', eos: '<|im_end|>' },
      { name: 'llama3-style', source: LLAMA3_STYLE, bos: '<|begin_of_text|>', eos: '<|eot_id|>' },
      { name: 'alternating', source: ALTERNATING, bos: '<s>', eos: '</s>' },
      { name: 'numbered', source: NUMBERED, bos: '', eos: '' },
      { name: 'qwen3-style', source: QWEN3_STYLE, bos: '', eos: '<|im_end|>' },
      { name: 'phi3-style', source: PHI3_STYLE, bos: '', eos: '<|endoftext|>' },
    );
  });

  test('renders every conversation as Python Jinja2 does, or refuses it with the same message', async () => {
    let compared = 0;
    let refused = 0;
    for (const t of templates) {
      for (const addGenerationPrompt of [true, false]) {
        const { results } = await oracle('render', {
          template: t.source, conversations: CONVERSATIONS, bos: t.bos, eos: t.eos, add_generation_prompt: addGenerationPrompt,
        });
        const template = new ChatTemplate(vendor.Template, t.source, { bosToken: t.bos, eosToken: t.eos });
        CONVERSATIONS.forEach((messages, i) => {
          const where = `${t.name}, conversation ${i}, add_generation_prompt=${addGenerationPrompt}`;
          if ('error' in results[i]) {
            assert.throws(() => template.render(messages, { addGenerationPrompt }),
              (e) => e instanceof InputError && e.message === results[i].error, where);
            refused += 1;
          } else {
            assert.equal(template.render(messages, { addGenerationPrompt }), results[i].text, where);
          }
          compared += 1;
        });
      }
    }
    assert.equal(compared, templates.length * CONVERSATIONS.length * 2);
    assert.equal(refused, 4, 'ALTERNATING refuses the last two conversations, with and without the prompt');
  });

  test('checks messages before rendering, with the Python messages', async () => {
    const bad = [[], 'hello', [{ role: 'tool', content: 'x' }], [{ role: 'user', content: 3 }], [null]];
    const { results } = await oracle('render', { template: templates[0].source, conversations: bad });
    const template = new ChatTemplate(vendor.Template, templates[0].source);
    bad.forEach((messages, i) => {
      assert.ok('error' in results[i]);
      assert.throws(() => template.render(messages), (e) => e instanceof InputError && e.message === results[i].error);
    });
    assert.deepEqual(checkMessages([{ role: 'user', content: 'x', name: 'extra' }]), [{ role: 'user', content: 'x' }]);
  });

  test('a template that does not compile is a FormatError', () => {
    assert.throws(() => new ChatTemplate(vendor.Template, '{% for m in messages %}'), FormatError);
  });
});
