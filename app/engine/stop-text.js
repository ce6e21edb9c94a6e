// stop-text.js: the completion's text as tokens arrive, cut at the first stop string, as model_prep/reference/engine.py
// `Engine.stream` does. Text that could still grow into a stop string is held back, and so is text ending in an
// incomplete UTF-8 character (U+FFFD), so a stream never shows what the final text will not contain.

/**
 * @typedef {object} Piece  text released by one push() or flush()
 * @property {string} text       new text since the previous piece (may be empty at a stop)
 * @property {number[]} tokenIds the tokens this piece accounts for
 */

/**
 * Length of the longest suffix of `text` that is a proper prefix of a stop string (held back in streams).
 * @param {string} text
 * @param {readonly string[]} stops
 */
export function stopOverlap(text, stops) {
  let best = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
      if (text.endsWith(s.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}

export class StopTextStream {
  /**
   * @param {(ids: number[]) => string} decode  ids -> text (skipping special tokens)
   * @param {readonly string[]} stops  stop strings; empty ones are ignored
   */
  constructor(decode, stops) {
    this.decode = decode;
    this.stops = stops.filter((s) => s.length > 0);
    /** @type {number[]} every token of the completion */
    this.tokens = [];
    /** @type {number[]} tokens not yet accounted for in a released piece */
    this.pending = [];
    this.sent = 0; // UTF-16 units of the decoded completion already released
    this.stopped = false; // a stop string was found: push no more
  }

  /**
   * Adds one token; returns the text it releases, or null while text is held back.
   * @param {number} token
   * @returns {Piece | null}
   */
  push(token) {
    if (this.stopped) throw new Error('push() after a stop string');
    this.tokens.push(token);
    this.pending.push(token);
    const text = this.decode(this.tokens);
    let cut = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.stopped = true;
      return this.release(text.slice(this.sent, cut), text.length);
    }
    if (text.endsWith('\ufffd')) return null; // a multi-byte character is still incomplete
    const safe = text.length - stopOverlap(text, this.stops);
    return safe > this.sent ? this.release(text.slice(this.sent, safe), safe) : null;
  }

  /**
   * The text held back, at the end of a completion that met no stop string; null when there is none.
   * @returns {Piece | null}
   */
  flush() {
    if (this.stopped) return null;
    const text = this.decode(this.tokens);
    return text.length > this.sent ? this.release(text.slice(this.sent), text.length) : null;
  }

  /** @param {string} text @param {number} sent */
  release(text, sent) {
    const piece = { text, tokenIds: this.pending };
    this.pending = [];
    this.sent = sent;
    return piece;
  }
}
