// vendor.js: the two npm libraries the host layer uses, imported by URL so that a Web Worker can load them too.
//
// A page resolves the bare specifiers through its import map (or Node through node_modules), but Chromium applies no
// import map inside a dedicated worker. So nothing in app/engine imports the libraries statically: the caller gets
// them from importVendor() and hands them in. The page side calls resolveVendorUrls() (which sees the page's import
// map) and sends the resulting absolute URLs to the worker, which calls importVendor(urls).

/** Bare specifiers; the page's import map (or node_modules) must resolve them. */
export const VENDOR_SPECIFIERS = Object.freeze({
  tokenizers: '@huggingface/tokenizers',
  jinja: '@huggingface/jinja',
});

/** @typedef {{tokenizers: string, jinja: string}} VendorUrls  module specifiers or absolute URLs */
/**
 * @typedef {object} Vendor
 * @property {typeof import('@huggingface/tokenizers').Tokenizer} Tokenizer
 * @property {typeof import('@huggingface/jinja').Template} Template
 */

/**
 * @param {VendorUrls} [urls]
 * @returns {Promise<Vendor>}
 */
export async function importVendor(urls = VENDOR_SPECIFIERS) {
  const [tokenizers, jinja] = await Promise.all([import(urls.tokenizers), import(urls.jinja)]);
  if (typeof tokenizers.Tokenizer !== 'function' || typeof jinja.Template !== 'function') {
    throw new Error(`${urls.tokenizers} or ${urls.jinja} is not the expected library (no Tokenizer / Template export)`);
  }
  return { Tokenizer: tokenizers.Tokenizer, Template: jinja.Template };
}

/**
 * Absolute URLs of the libraries as this module's realm resolves them (the page's import map).
 * @returns {VendorUrls}
 */
export function resolveVendorUrls() {
  return {
    tokenizers: import.meta.resolve(VENDOR_SPECIFIERS.tokenizers),
    jinja: import.meta.resolve(VENDOR_SPECIFIERS.jinja),
  };
}
