// vendor.js: the npm libraries the host layer uses, imported by URL so that a Web Worker can load them too.
//
// A page resolves the bare specifiers through its import map (or Node through node_modules), but Chromium applies no
// import map inside a dedicated worker. So nothing in app/engine imports the libraries statically: the caller gets
// them from importVendor() and hands them in. The page side calls resolveVendorUrls() (which sees the page's import
// map) and sends the resulting absolute URLs to the worker, which calls importVendor(urls).
//
// @mlc-ai/web-xgrammar (the grammar engine, its WASM inlined in the file) is loaded only when a request first asks
// for structured output: vendor.loadXgrammar(). Its file is a UMD bundle, not an ES module: imported as a module in
// a browser it defines globalThis.xgrammar; under Node it is run as the CommonJS module it also is.

/** Bare specifiers; the page's import map (or node_modules) must resolve them. */
export const VENDOR_SPECIFIERS = Object.freeze({
  tokenizers: '@huggingface/tokenizers',
  jinja: '@huggingface/jinja',
  xgrammar: '@mlc-ai/web-xgrammar',
});

/** @typedef {typeof import('@mlc-ai/web-xgrammar')} Xgrammar */
/**
 * @typedef {{tokenizers: string, jinja: string, xgrammar?: string}} VendorUrls  module specifiers or absolute URLs;
 *   without xgrammar, it is looked for beside the tokenizers package (same node_modules or dist/vendor folder)
 */
/**
 * @typedef {object} Vendor
 * @property {typeof import('@huggingface/tokenizers').Tokenizer} Tokenizer
 * @property {typeof import('@huggingface/jinja').Template} Template
 * @property {() => Promise<Xgrammar>} [loadXgrammar]  the grammar engine, imported on first call
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
  const xgrammarUrl = urls.xgrammar ?? besideTokenizers(urls.tokenizers);
  /** @type {Promise<Xgrammar> | null} */
  let xgrammar = null;
  const loadXgrammar = () => {
    xgrammar ??= importXgrammar(xgrammarUrl).catch((e) => {
      xgrammar = null; // try again on the next request
      throw e;
    });
    return xgrammar;
  };
  return { Tokenizer: tokenizers.Tokenizer, Template: jinja.Template, loadXgrammar };
}

/**
 * Where web-xgrammar's file is when only the tokenizers URL is known: the same folder of npm packages.
 * @param {string} tokenizersUrl
 */
function besideTokenizers(tokenizersUrl) {
  const at = tokenizersUrl.lastIndexOf(`${VENDOR_SPECIFIERS.tokenizers}/`);
  if (at < 0) return VENDOR_SPECIFIERS.xgrammar;
  return `${tokenizersUrl.slice(0, at)}${VENDOR_SPECIFIERS.xgrammar}/lib/index.js`;
}

/** @returns {boolean} */
function isNode() {
  const p = /** @type {any} */ (globalThis).process;
  return typeof p === 'object' && typeof p?.versions?.node === 'string';
}

/**
 * The grammar engine's exports, from its UMD file.
 * @param {string} url  specifier or absolute URL
 * @returns {Promise<Xgrammar>}
 */
export async function importXgrammar(url) {
  /** @type {any} */
  let lib;
  if (isNode()) {
    // Node loads the file as an ES module (its package says "type": "module"), where the bundle cannot run; run it
    // as the CommonJS module it also is. Node only: a browser never reaches this (nor its Function()).
    const nodeModule = 'node:module'; // a variable: the browser-side type check has no Node types
    const nodeFs = 'node:fs';
    const nodeUrl = 'node:url';
    const [{ createRequire }, { readFileSync }, { fileURLToPath }] =
      await Promise.all([import(nodeModule), import(nodeFs), import(nodeUrl)]);
    const resolved = url.startsWith('file:') ? url : import.meta.resolve(url);
    const path = fileURLToPath(resolved);
    const module = { exports: {} };
    // eslint-disable-next-line no-new-func
    new Function('exports', 'require', 'module', '__filename', '__dirname', readFileSync(path, 'utf8'))(
      module.exports, createRequire(path), module, path, path.slice(0, path.lastIndexOf('/')));
    lib = module.exports;
  } else {
    const imported = await import(url);
    lib = imported.GrammarCompiler ? imported : imported.default?.GrammarCompiler ? imported.default
      : /** @type {any} */ (globalThis).xgrammar;
  }
  if (typeof lib?.GrammarCompiler?.createGrammarCompiler !== 'function') {
    throw new Error(`${url} is not @mlc-ai/web-xgrammar (no GrammarCompiler)`);
  }
  return lib;
}

/**
 * Absolute URLs of the libraries as this module's realm resolves them (the page's import map).
 * @returns {VendorUrls}
 */
export function resolveVendorUrls() {
  /** @type {VendorUrls} */
  const urls = {
    tokenizers: import.meta.resolve(VENDOR_SPECIFIERS.tokenizers),
    jinja: import.meta.resolve(VENDOR_SPECIFIERS.jinja),
  };
  try {
    urls.xgrammar = import.meta.resolve(VENDOR_SPECIFIERS.xgrammar);
  } catch {
    // an import map without it: the worker looks beside the tokenizers
  }
  return urls;
}
