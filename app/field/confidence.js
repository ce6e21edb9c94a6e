// confidence.js: how sure the engine was of the decisive field, from its token log-probabilities (OpenAI's
// logprobs.content). The same code as app/field/confidence.py: the product of the probabilities of the tokens that
// overlap the field's value in the compact JSON answer, each under the (grammar-masked) distribution it came from.

/**
 * Character span [start, end) of the top-level string value of `field` in a compact JSON answer, or null.
 * @param {string} content
 * @param {string} field
 * @returns {[number, number] | null}
 */
export function valueSpan(content, field) {
  let value;
  try {
    value = JSON.parse(content);
  } catch {
    return null;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value) || typeof value[field] !== 'string') return null;
  const quoted = JSON.stringify(value[field]);
  const escape = (/** @type {string} */ s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(`${escape(JSON.stringify(field))}\\s*:\\s*${escape(quoted)}`).exec(content);
  if (!m) return null;
  const end = m.index + m[0].length;
  return [end - quoted.length + 1, end - 1];
}

/**
 * @param {string} content
 * @param {{token: string, logprob: number}[]} tokens  logprobs.content entries whose texts make up `content`
 * @param {string} field
 * @returns {number | null}
 */
export function decisiveProbability(content, tokens, field) {
  const span = valueSpan(content, field);
  if (!span || !tokens.length) return null;
  if (tokens.map((t) => String(t.token ?? '')).join('') !== content) return null;
  let total = 0;
  let pos = 0;
  for (const t of tokens) {
    const end = pos + String(t.token).length;
    if (end > span[0] && pos < span[1]) total += Number(t.logprob);
    pos = end;
  }
  return Math.round(Math.exp(total) * 1e6) / 1e6;
}
