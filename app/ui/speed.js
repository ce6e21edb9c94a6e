// speed.js: what to expect from this device's engine, measured once. On the first start of a model version on an
// engine, a short greedy answer (a few tokens) is timed, and the screen says "about N words per second"; the figure
// is kept on the device (localStorage) per engine and version, so that later starts cost nothing.

/** @typedef {import('./chat_view.js').ChatEngine} ChatEngine */
/** @typedef {{tokensPerSecond: number, measuredAt: string}} Speed */

/** Tokens timed: enough for a decode rate, few enough to cost about a second on a slow device. */
export const SPEED_TOKENS = 8;
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
 * Times a short greedy answer on `engine` (its decode rate, from the answer's timings) and stores it. The timing's
 * tokens never reach the conversation; the engine's KV cache is reset after it.
 * @param {ChatEngine} engine @param {Storage | null} storage @param {string} kind @param {string} packageId
 * @returns {Promise<Speed | null>}  null when the answer carried no usable timing
 */
export async function measureSpeed(engine, storage, kind, packageId) {
  const reply = await engine.chat.completions.create({
    messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: SPEED_TOKENS, temperature: 0, stream: false,
  });
  /** @type {any} */ (engine).resetCache?.();
  const t = /** @type {any} */ (reply).timings;
  // the decode rate: predicted_ms runs from the first token to the last, so it holds predicted_n - 1 decode steps
  // (engine.js); with one token only, the whole answer's rate (prompt and first token)
  let rate = t?.predicted_n > 1 && t.predicted_ms > 0 ? (1000 * (t.predicted_n - 1)) / t.predicted_ms : 0;
  if (!rate && t?.predicted_n > 0 && t.prompt_ms + t.predicted_ms > 0) rate = (1000 * t.predicted_n) / (t.prompt_ms + t.predicted_ms);
  if (!(rate > 0)) return null;
  const speed = { tokensPerSecond: rate, measuredAt: new Date().toISOString() };
  try {
    storage?.setItem(keyOf(kind, packageId), JSON.stringify(speed));
  } catch {
    // storage full or blocked: the figure is shown this time only
  }
  return speed;
}

/**
 * "about 18 words per second", "about one word every 3 seconds".
 * @param {number} tokensPerSecond
 */
export function speedText(tokensPerSecond) {
  const words = tokensPerSecond * WORDS_PER_TOKEN;
  if (words >= 1.5) {
    const n = words >= 20 ? Math.round(words / 5) * 5 : Math.round(words);
    return `about ${n} words per second`;
  }
  if (words >= 0.75) return 'about one word per second';
  return `about one word every ${Math.round(1 / words)} seconds`;
}
