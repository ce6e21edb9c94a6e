// A task screen's answer without the page: app/ui/field_client.js (request, stream, confidence, review) with a
// scripted engine, app/ui/card_view.js (what the card says) and app/ui/audit.js (the record, its grammar hash against
// Python's GrammarSpec key, JSON Lines). The page itself: tests/pwa/test_task_screens.py.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { loadRules, loadTasks, taskSchema } from '../../app/field/index.js';
import { auditRecord, schemaHash, toJsonLines } from '../../app/ui/audit.js';
import { cardContent } from '../../app/ui/card_view.js';
import { gather } from '../../app/ui/completion.js';
import { answerTask, buildRequest, rulesFirst } from '../../app/ui/field_client.js';
import { ROOT, pythonPath } from './helpers/python.js';

const rules = loadRules(new Uint8Array(readFileSync(join(ROOT, 'app/field/rules.json'))));
const tasks = loadTasks(new Uint8Array(readFileSync(join(ROOT, 'app/field/tasks.json'))));
const field = { rules, tasks };

const TRIAGE_OK = '{"probable":["fever"],"priority":"urgent","interventions":["monitor vital signs"]}';

/**
 * An engine that streams `content` in pieces of 5 characters, each piece one "token" with logprob `lp`, then
 * `finish`. It keeps the requests it was sent.
 * @param {string} content @param {{finish?: string | null, lp?: number, failAt?: number}} [o]
 */
function scripted(content, o = {}) {
  const { finish = 'stop', lp = -0.01, failAt = -1 } = o;
  /** @type {any[]} */
  const requests = [];
  const engine = {
    requests,
    chat: {
      completions: {
        /** @param {any} req */
        async create(req) {
          requests.push(req);
          return (async function* stream() {
            yield { choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] };
            for (let i = 0, n = 0; i < content.length; i += 5, n++) {
              if (n === failAt) throw new Error('the GPU device was lost');
              if (req.signal?.aborted) throw new DOMException('aborted', 'AbortError');
              const token = content.slice(i, i + 5);
              yield { choices: [{ index: 0, delta: { content: token }, logprobs: { content: [{ token, logprob: lp, bytes: null, top_logprobs: [] }] }, finish_reason: null }] };
            }
            yield { choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }],
              timings: { prompt_n: 10, prompt_ms: 5, prompt_per_second: 2000, predicted_n: 17, predicted_ms: 30, predicted_per_second: 566 } };
          })();
        },
      },
    },
  };
  return engine;
}

const CTX = { where: 'on this device (WebGPU)', model: 'tiny', stopped: false, error: null, maxTokens: 200 };

describe('answerTask', () => {
  test('sends the task request streamed with logprobs; a valid answer makes a card with its confidence', async () => {
    const engine = scripted(TRIAGE_OK);
    /** @type {string[]} */
    const seen = [];
    const a = await answerTask(/** @type {any} */ (engine), 'triage',
      { notes: 'fever since yesterday', asset: null, fields: [{ quantity: 'heart_rate', value: '96', unit: 'bpm' }] },
      field, { onText: (t) => seen.push(t) });
    const req = engine.requests[0];
    assert.equal(req.stream, true);
    assert.equal(req.logprobs, true);
    assert.equal(req.temperature, 0);
    assert.equal(req.max_tokens, tasks.task('triage').max_tokens);
    assert.deepEqual(req.response_format.json_schema.schema, taskSchema('triage', rules, tasks));
    assert.deepEqual(req.metadata, { fieldllm_task: 'triage', fieldllm_rules_version: rules.rules_version });
    assert.match(req.messages[1].content, /HR: 96 bpm/);
    assert.equal(seen.at(-1), TRIAGE_OK);
    assert.equal(a.completion.finish_reason, 'stop');
    assert.equal(a.completion.timings?.predicted_n, 17);
    assert.ok(a.probability !== null && a.probability > 0.9, String(a.probability));
    assert.equal(a.card.valid, true);
    assert.equal(a.card.status, 'in_range');
    assert.equal(a.card.confidence, 'high');
    const c = cardContent(a.card, tasks.task('triage'), a.schema, { ...CTX, content: a.completion.content,
      finish_reason: 'stop', probability: a.probability });
    assert.equal(c.headline, 'IN RANGE');
    assert.deepEqual(c.fields.map((f) => [f.label, f.values]), [
      ['Probable problems', ['fever']], ['Priority', ['urgent']], ['Interventions', ['monitor vital signs']]]);
    assert.equal(c.raw, null);
    assert.equal(c.ending, null);
    assert.equal(c.provenance, `Computed on this device (WebGPU) · tiny · rules ${rules.rules_version}`);
    assert.equal(c.checked, 'Readings checked: HR 96 bpm');
  });

  test('a red-flag reading escalates with the rule that fired, even when the model rates it minor', async () => {
    const minor = TRIAGE_OK.replace('urgent', 'minor');
    const a = await answerTask(/** @type {any} */ (scripted(minor, { lp: -2 })), 'triage',
      { notes: '', asset: null, fields: [{ quantity: 'spo2', value: '84', unit: '%' }] }, field);
    assert.equal(a.card.escalate, true);
    assert.equal(a.card.model_suggests_escalation, false);
    const c = cardContent(a.card, tasks.task('triage'), a.schema, { ...CTX, content: minor, finish_reason: 'stop',
      probability: a.probability });
    assert.equal(c.tone, 'escalate');
    assert.equal(c.headline, 'ESCALATE');
    assert.deepEqual(c.reasons, ['SpO2 84% ≤ 91%']);
    assert.equal(a.card.confidence, 'low');
    assert.ok(c.notices.includes('Uncertain: follow protocol / consult.'), c.notices.join('|'));
    assert.match(/** @type {string} */ (c.confidence), /^Confidence in the priority: low \(\d+ %\)$/);
  });

  test('the model alone can add escalation, and the card says it was the model', async () => {
    const immediate = TRIAGE_OK.replace('urgent', 'immediate');
    const a = await answerTask(/** @type {any} */ (scripted(immediate)), 'triage',
      { notes: 'fell from a ladder', asset: null, fields: [] }, field);
    assert.equal(a.card.escalate, true);
    const c = cardContent(a.card, tasks.task('triage'), a.schema, { ...CTX, content: immediate, finish_reason: 'stop',
      probability: a.probability });
    assert.deepEqual(c.reasons, ['The assistant rated the priority "immediate".']);
  });

  test('an answer cut at the token limit shows the safe text, the raw output only as unvalidated', async () => {
    const cut = TRIAGE_OK.slice(0, 30);
    const a = await answerTask(/** @type {any} */ (scripted(cut, { finish: 'length' })), 'triage',
      { notes: '', asset: null, fields: [{ quantity: 'spo2', value: '84', unit: '%' }] }, field, { maxTokens: 16 });
    assert.equal(a.request.max_tokens, 16);
    assert.equal(a.card.valid, false);
    assert.equal(a.card.cut, true);
    assert.equal(a.probability, null);
    const c = cardContent(a.card, tasks.task('triage'), a.schema, { ...CTX, content: cut, finish_reason: 'length',
      maxTokens: 16, probability: null });
    assert.equal(c.headline, 'ESCALATE');
    assert.equal(c.ending, 'Cut at the token limit (16 tokens): the answer is incomplete.');
    assert.equal(c.safeText, a.card.safe_text);
    assert.match(/** @type {string} */ (c.safeText), /^ESCALATE: SpO2 84% ≤ 91%\. .*cut off/);
    assert.deepEqual(c.fields, []);
    assert.equal(c.why, null); // the ending says why
    assert.equal(c.raw, cut);
  });

  test('an invalid answer that ended by itself: not shown, no escalation invented', async () => {
    const bad = '{"probable":["x"],"priority":"soon","interventions":["CPR"]}';
    const a = await answerTask(/** @type {any} */ (scripted(bad)), 'triage',
      { notes: 'HR 80', asset: null, fields: [] }, field);
    const c = cardContent(a.card, tasks.task('triage'), a.schema, { ...CTX, content: bad, finish_reason: 'stop',
      probability: a.probability });
    assert.equal(a.card.status, 'invalid_answer');
    assert.equal(c.headline, 'ANSWER NOT SHOWN');
    assert.equal(c.ending, null);
    assert.equal(c.safeText, rules.texts.invalid);
    assert.equal(c.why, 'Why it is not shown: answer.priority: not one of the allowed values.');
    assert.deepEqual(c.reasons, ['No reading crossed a limit of the rules.']); // HR 80, from the notes
    assert.equal(c.checked, 'Readings checked: HR 80');
    assert.equal(c.raw, bad);
  });

  test('stopped by the user: the card says stopped; an engine failure says it failed; both still escalate', async () => {
    const controller = new AbortController();
    const engine = scripted(TRIAGE_OK);
    const spo2 = { notes: '', asset: null, fields: [{ quantity: 'spo2', value: '84', unit: '%' }] };
    const a = await answerTask(/** @type {any} */ (engine), 'triage', spo2, field, {
      signal: controller.signal, onText: () => controller.abort(),
    });
    assert.equal(a.completion.stopped, true);
    assert.equal(a.completion.finish_reason, null);
    assert.equal(a.card.escalate, true);
    const c = cardContent(a.card, tasks.task('triage'), a.schema, { ...CTX, content: a.completion.content,
      finish_reason: null, stopped: true, probability: null });
    assert.equal(c.ending, 'Stopped before it was finished: the answer is incomplete.');
    const failed = await answerTask(/** @type {any} */ (scripted(TRIAGE_OK, { failAt: 3 })), 'triage', spo2, field);
    assert.equal(failed.completion.error, 'the GPU device was lost');
    assert.equal(failed.completion.content, TRIAGE_OK.slice(0, 15));
    assert.equal(failed.card.escalate, true);
    const f = cardContent(failed.card, tasks.task('triage'), failed.schema, { ...CTX, content: '', finish_reason: null,
      error: failed.completion.error, probability: null });
    assert.equal(f.ending, 'The answer failed: the GPU device was lost');
  });

  test('the rules decide before the model answers, as the card will', async () => {
    const input = { notes: 'HR 38 at rest', asset: null, fields: [{ quantity: 'spo2', value: '84', unit: '%' }] };
    const now = rulesFirst('triage', input, field);
    assert.equal(now.status, 'escalate');
    const a = await answerTask(/** @type {any} */ (scripted(TRIAGE_OK)), 'triage', input, field);
    assert.deepEqual(now.fired.map((f) => f.message), a.card.fired.map((f) => f.message));
    assert.equal(now.fired.length, 2);
    assert.equal(rulesFirst('fault', { notes: '', asset: 'P-3', fields: [] }, field).status, 'no_readings');
  });

  test('a form value that is not a reading is refused before anything is asked', () => {
    assert.throws(() => buildRequest('triage', { notes: '', asset: null, fields: [{ quantity: 'bp', value: '120', unit: 'mmHg' }] }, field),
      { name: 'ReadingError' });
  });

  test('fault: the asset named on the form picks its limits; unsupported numbers are flagged', async () => {
    const answer = JSON.stringify({ asset: 'P-3', probable_causes: ['worn valve'], recommended_action: 'stop at 950 psi',
      escalate_if: ['pressure rises'], severity: 'high' });
    const a = await answerTask(/** @type {any} */ (scripted(answer)), 'fault',
      { notes: 'drifting high since 0200', asset: 'P-3', fields: [{ quantity: 'vibration', value: '5.2', unit: 'mm/s' }] }, field);
    assert.equal(a.card.valid, true, a.card.problems.join('; '));
    assert.equal(a.card.escalate, true);
    const c = cardContent(a.card, tasks.task('fault'), a.schema, { ...CTX, content: answer, finish_reason: 'stop',
      probability: a.probability });
    assert.deepEqual(c.reasons, [a.card.fired[0].message]);
    assert.match(c.reasons[0], /^P-3 vibration 5\.2 mm\/s ≥ /);
    assert.equal(c.unsupported, 'Numbers in the answer that are not in your input: 950. Check them.');
  });

  test('screening shows only the schema fields: summary, context, next step (no diagnosis)', async () => {
    const answer = JSON.stringify({ reading_summary: 'Fasting glucose 92 mg/dL', context: 'Within the usual fasting range.',
      next_step: 'no action: routine follow-up' });
    const a = await answerTask(/** @type {any} */ (scripted(answer)), 'screening',
      { notes: 'Fasting: yes.', asset: null, fields: [{ quantity: 'glucose', value: '92', unit: 'mg/dL' }] }, field);
    const c = cardContent(a.card, tasks.task('screening'), a.schema, { ...CTX, content: answer, finish_reason: 'stop',
      probability: a.probability });
    assert.equal(c.headline, 'IN RANGE');
    assert.deepEqual(c.fields.map((f) => f.name), ['reading_summary', 'context', 'next_step']);
  });
});

describe('gather', () => {
  test('keeps usage from a usage chunk with no choices', async () => {
    const g = await gather((async function* s() {
      yield { choices: [{ index: 0, delta: { content: 'a' }, logprobs: null, finish_reason: 'stop' }] };
      yield { choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } };
    })());
    assert.deepEqual(g, { content: 'a', finish_reason: 'stop', stopped: false, logprobs: [],
      usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 }, timings: null, error: null });
  });
});

describe('audit', () => {
  test('the grammar hash is Python GrammarSpec.json_schema(schema).key for every task schema', () => {
    const py = 'import json\nfrom app.field import load_rules, load_tasks, task_schema\n'
      + 'from model_prep.reference.grammar import GrammarSpec\nr = load_rules(); t = load_tasks()\n'
      + 'print(json.dumps({k: GrammarSpec.json_schema(task_schema(k, r, t)).key for k in ("fault", "triage", "screening")}))';
    const keys = JSON.parse(execFileSync(pythonPath(), ['-c', py], { cwd: ROOT }).toString());
    for (const kind of ['fault', 'triage', 'screening']) {
      assert.equal(schemaHash(taskSchema(kind, rules, tasks)), keys[kind], kind);
    }
  });

  test('a record holds what the card was made from, and exports as one JSON line', async () => {
    const a = await answerTask(/** @type {any} */ (scripted(TRIAGE_OK.replace('urgent', 'minor'))), 'triage',
      { notes: 'SOB', asset: null, fields: [{ quantity: 'spo2', value: '84', unit: '%' }] }, field);
    const rec = auditRecord({
      time: new Date('2026-01-02T03:04:05Z'), kind: 'triage', engine: 'webgpu', where: 'on this device (WebGPU)',
      model: 'tiny', packageId: 'abc123', rules: { rules_version: rules.rules_version, sha256: rules.sha256 },
      request: a.request, input: { notes: 'SOB', asset: null, fields: [{ quantity: 'spo2', value: '84', unit: '%' }] },
      completion: a.completion, probability: a.probability, card: a.card,
    });
    assert.equal(rec.time, '2026-01-02T03:04:05.000Z');
    assert.equal(rec.rules_sha256, rules.sha256);
    assert.deepEqual(rec.sampling, { temperature: 0, top_p: null, seed: null,
      max_tokens: tasks.task('triage').max_tokens, logprobs: true });
    assert.equal(rec.grammar.sha256, schemaHash(taskSchema('triage', rules, tasks)));
    assert.deepEqual(rec.readings.map((/** @type {any} */ r) => r.text), ['SpO2 84%']);
    assert.equal(rec.verdict.status, 'escalate');
    assert.deepEqual(rec.verdict.fired, [{ rule: 'spo2_low', message: 'SpO2 84% ≤ 91%' }]);
    assert.equal(rec.output, a.completion.content);
    assert.equal(rec.finish_reason, 'stop');
    assert.equal(rec.timings.predicted_n, 17);
    const lines = toJsonLines([rec, { ...rec, task: 'fault' }]).split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[2], '');
    assert.deepEqual(JSON.parse(lines[0]), rec);
  });
});
