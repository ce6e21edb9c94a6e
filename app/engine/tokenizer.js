// tokenizer.js: text <-> token ids with the package's tokenizer.json, as model_prep/reference/engine.py uses Hugging Face
// `tokenizers`: encode adds no special tokens (the chat template writes them as text), decode skips special tokens
// and does no "clean-up" of spaces (the JS library cleans up by default; the Rust one does not).

/** @typedef {import('./vendor.js').Vendor} Vendor */

export class TextTokenizer {
  /**
   * @param {Vendor['Tokenizer']} Tokenizer  the class from @huggingface/tokenizers (see vendor.js)
   * @param {object} json  parsed tokenizer.json
   */
  constructor(Tokenizer, json) {
    this.inner = new Tokenizer(json, { clean_up_tokenization_spaces: false });
  }

  /** @param {string} text @returns {number[]} */
  encode(text) {
    return this.inner.encode(text, { add_special_tokens: false }).ids;
  }

  /**
   * Text of ids; an incomplete UTF-8 sequence at the end reads as U+FFFD (streaming holds such text back).
   * @param {ArrayLike<number>} ids
   */
  decode(ids) {
    if (ids.length === 0) return '';
    return this.inner.decode(Array.from(ids), { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  /** The token's string in the vocabulary (e.g. "<|im_start|>"), or undefined. @param {number} id */
  idToToken(id) {
    return this.inner.id_to_token(id);
  }

  /** @param {string} token */
  tokenToId(token) {
    return this.inner.token_to_id(token);
  }
}
