// field_client.js: a task screen's question through the engine and the rules, without DOM. The form's fields become
// readings (readingsFromForm), the request is app/field's taskRequest (the task's schema as response_format,
// temperature 0) streamed with logprobs; the answer, its decisive field's probability and the rules make the card
// (review). Both engines (this device's worker and the fallback server) take the same request.

import { decisiveProbability } from '../field/confidence.js';
import {
  evaluate, loadRules, loadTasks, parseReadings, readingsFromForm, review, taskRequest, taskSchema,
} from '../field/index.js';
import { gather } from './completion.js';
import { isAbort, messageOf } from './errors.js';

/** @typedef {import('../field/rules.js').Rules} Rules */
/** @typedef {import('../field/rules.js').Tasks} Tasks */
/** @typedef {import('../field/answers.js').Card} Card */
/** @typedef {import('./completion.js').Gathered} Gathered */
/** @typedef {import('./chat_view.js').ChatEngine} ChatEngine */
/** @typedef {{rules: Rules, tasks: Tasks}} Field */
/**
 * @typedef {object} TaskInput  what a screen's form holds
 * @property {string} notes
 * @property {string | null} asset
 * @property {Array<{quantity: string, value: string, unit: string}>} fields  filled-in fields only
 */
/**
 * @typedef {object} TaskAnswer
 * @property {Record<string, any>} request
 * @property {Record<string, any>} schema
 * @property {Gathered} completion
 * @property {number | null} probability
 * @property {Card} card
 */

export const RULES_URL = 'app/field/rules.json';
export const TASKS_URL = 'app/field/tasks.json';

/**
 * The rules and tasks files the build shipped (pre-cached: this works offline).
 * @param {typeof fetch} fetchFn @param {string} base  the app's base URL
 * @returns {Promise<Field>}
 */
export async function loadField(fetchFn, base) {
  /** @param {string} path */
  const bytes = async (path) => {
    const r = await fetchFn(new URL(path, base));
    if (!r.ok) throw new Error(`${path} could not be read (${r.status}): reload the app`);
    return new Uint8Array(await r.arrayBuffer());
  };
  const [rules, tasks] = await Promise.all([bytes(RULES_URL), bytes(TASKS_URL)]);
  return { rules: loadRules(rules), tasks: loadTasks(tasks) };
}

/**
 * The request body for a task (throws ReadingError for a field that is not a reading).
 * @param {string} kind @param {TaskInput} input @param {Field} field @param {number | null} [maxTokens]  a lower cap
 * @returns {{request: Record<string, any>, readings: import('../field/readings.js').Reading[]}}
 */
export function buildRequest(kind, input, field, maxTokens = null) {
  const readings = readingsFromForm(input.fields, field.rules);
  const request = {
    ...taskRequest(kind, input.notes, readings, field.rules, field.tasks, input.asset),
    stream: true,
    logprobs: true,
  };
  if (maxTokens !== null) request.max_tokens = Math.min(request.max_tokens, maxTokens);
  return { request, readings };
}

/**
 * The rules' verdict on the input alone, before the model answers (what review() will decide about the readings):
 * an escalation is on screen at once, not after the answer.
 * @param {string} kind @param {TaskInput} input @param {Field} field
 * @returns {import('../field/evaluate.js').Verdict}
 */
export function rulesFirst(kind, input, field) {
  const readings = readingsFromForm(input.fields, field.rules);
  const text = reviewText(input);
  return evaluate(kind, [...readings, ...parseReadings(text, field.rules, kind)], text, field.rules, input.asset);
}

/**
 * The text review() reads: the notes, after the asset line as the request has it (its numbers, "P-3", are the
 * user's, not the model's inventions).
 * @param {TaskInput} input
 */
function reviewText(input) {
  return input.asset ? `Asset: ${input.asset}\n${input.notes}` : input.notes;
}

/**
 * Asks the engine and reviews its answer. Every answer gives a card, so that a red-flag reading is escalated whatever
 * the engine did: an abort (opts.signal) makes the answer "stopped", an engine failure an answer with `error` set.
 * @param {ChatEngine} engine @param {string} kind @param {TaskInput} input @param {Field} field
 * @param {{maxTokens?: number | null, signal?: AbortSignal, onText?: (text: string) => void}} [opts]
 * @returns {Promise<TaskAnswer>}
 */
export async function answerTask(engine, kind, input, field, opts = {}) {
  const { request, readings } = buildRequest(kind, input, field, opts.maxTokens ?? null);
  const task = field.tasks.task(kind);
  /** @type {Gathered} */
  let completion;
  try {
    const stream = await engine.chat.completions.create(/** @type {any} */ ({ ...request, signal: opts.signal }));
    completion = await gather(/** @type {AsyncIterable<any>} */ (stream), opts.onText);
  } catch (e) {
    const stopped = isAbort(e) || opts.signal?.aborted === true;
    completion = { content: '', finish_reason: null, stopped, logprobs: [], usage: null, timings: null,
      error: stopped ? null : messageOf(e) };
  }
  const probability = completion.finish_reason === 'stop'
    ? decisiveProbability(completion.content, completion.logprobs, task.decisive) : null;
  const card = review(kind, reviewText(input), readings, {
    content: completion.content, finish_reason: completion.finish_reason, decisive_probability: probability,
  }, field.rules, field.tasks, input.asset);
  return { request, schema: taskSchema(kind, field.rules, field.tasks), completion, probability, card };
}
