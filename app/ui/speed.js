// speed.js: what to expect from this device's engine, measured once. On the first start of a model version on an
// engine, a short greedy answer (a few tokens, and never more than a few seconds) is timed, and the screen says
// "about N words per second"; the figure is kept on the device (localStorage) per engine and version, so that later
// starts cost nothing.

import { isAbort } from './errors.js';

/** @typedef {import('./chat_view.js').ChatEngine} ChatEngine */
/**
 * @typedef {object} Speed
 * @property {number} tokensPerSecond  the decode rate; with `slow`, an upper bound
 * @property {boolean} [slow]  fewer than two tokens came within the time allowed
 * @property {string} measuredAt
 */

/** Tokens timed: enough for a decode rate, few enough to cost about a second on a slow device. */
export const SPEED_TOKENS = 8;
/** The longest the timing may take (ms): on an engine slower than this, it stops and says so. */
export const SPEED_BUDGET_MS = 5000;
/** English text runs at about 0.75 words per token for these tokenizers. */
const WORDS_PER_TOKEN = 0.75;
const KEY_PREFIX = 'fieldllm-speed:';

/** @param {string} engine @param {string} packageId */
const keyOf = (engine, packageId) => `${KEY_PREFIX}${engine}:${packageId}`;

/**
 * The stored figure for this engine and model version, or null.
 * @param {Storage | null} storage @param {string} engine @param {string} packageId
 * @returns {Speed | null}
 */
export function storedSpeed(storage, engine, packageId) {
  try {
    const v = JSON.parse(storage?.getItem(keyOf(engine, packageId)) ?? 'null');
    return v && typeof v.tokensPerSecond === 'number' && v.tokensPerSecond > 0 ? v : null;
  } catch {
    return null;
  }
}

/**
 * Times a short greedy answer on `engine` and stores the decode rate: from the answer's timings when it finishes
 * within `budgetMs`, else from the arrival of its tokens until then (stopped there). The timing's tokens never reach
 * the conversation (the engine's KV cache keeps only the prefix a later prompt shares with it).
 * @param {ChatEngine} engine @param {Storage | null} storage @param {string} kind @param {string} packageId
 * @param {{budgetMs?: number, now?: () => number}} [opts]
 * @returns {Promise<Speed>}
 */
export async function measureSpeed(engine, storage, kind, packageId, opts = {}) {
  const budgetMs = opts.budgetMs ?? SPEED_BUDGET_MS;
  const now = opts.now ?? (() => performance.now());
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), budgetMs);
  /** @type {number[]} arrival times of the tokens' text */
  const arrivals = [];
  /** @type {any} */
  let timings = null;
  try {
    const stream = await engine.chat.completions.create({
      messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: SPEED_TOKENS, temperature: 0, stream: true,
      signal: controller.signal,
    });
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content) arrivals.push(now());
      timings = /** @type {any} */ (chunk).timings ?? timings;
    }
  } catch (e) {
    if (!isAbort(e)) throw e;
  } finally {
    clearTimeout(timer);
  }
  /** @type {Speed} */
  let speed;
  if (timings?.predicted_n > 1 && timings.predicted_ms > 0) {
    // predicted_ms runs from the first token to the last: predicted_n - 1 decode steps (engine.js)
    speed = { tokensPerSecond: (1000 * (timings.predicted_n - 1)) / timings.predicted_ms, measuredAt: '' };
  } else if (arrivals.length >= 2 && arrivals[arrivals.length - 1] > arrivals[0]) {
    speed = { tokensPerSecond: (1000 * (arrivals.length - 1)) / (arrivals[arrivals.length - 1] - arrivals[0]), measuredAt: '' };
  } else {
    speed = { tokensPerSecond: 1000 / budgetMs, slow: true, measuredAt: '' };
  }
  speed.measuredAt = new Date().toISOString();
  try {
    storage?.setItem(keyOf(kind, packageId), JSON.stringify(speed));
  } catch {
    // storage full or blocked: the figure is shown this time only
  }
  return speed;
}

/**
 * "about 18 words per second", "about one word every 3 seconds", "slow: under one word every 5 seconds".
 * @param {Speed | number} speed  a Speed, or tokens per second
 */
export function speedText(speed) {
  const s = typeof speed === 'number' ? { tokensPerSecond: speed, slow: false } : speed;
  if (s.slow) return `slow: under one word every ${Math.round(1 / (s.tokensPerSecond * WORDS_PER_TOKEN))} seconds`;
  const words = s.tokensPerSecond * WORDS_PER_TOKEN;
  if (words >= 1.5) {
    const n = words >= 20 ? Math.round(words / 5) * 5 : Math.round(words);
    return `about ${n} words per second`;
  }
  if (words >= 0.75) return 'about one word per second';
  return `about one word every ${Math.round(1 / words)} seconds`;
}
