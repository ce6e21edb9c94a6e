// engine_host.js: the page's side of the engine. It asks the engine's probe whether this device can run a model
// (before anything is downloaded), and starts the engine worker on a stored version (app/engine/client.js), passing
// it the vendored libraries' URLs from this page's import map; or, where the probe says no, connects to the fallback
// server that served the page (app/engine/server-client.js).

import { EngineClient, ServerEngine, probe } from '../engine/index.js';
import { DeviceUnsupportedError, messageOf } from './errors.js';

/** @typedef {import('../engine/index.js').Manifest} Manifest */
/** @typedef {import('../engine/index.js').LoadProgress} LoadProgress */
/** @typedef {import('../engine/index.js').VendorUrls} VendorUrls */

const SHADERS = new URL('../../webgpu_shaders/', import.meta.url);

/**
 * The npm libraries' URLs, read from the import map's text. Reading the text (rather than import.meta.resolve)
 * works even where the server's content-security-policy kept the inline map from running: the worker needs
 * absolute URLs either way, since Chromium applies no import map inside a worker.
 * @param {Document} doc
 * @returns {VendorUrls}
 */
export function vendorUrlsFromImportMap(doc) {
  const el = doc.querySelector('script[type="importmap"]');
  /** @type {Record<string, string>} */
  const imports = el ? JSON.parse(el.textContent ?? '{}').imports ?? {} : {};
  const at = (/** @type {string} */ name) => {
    if (!imports[name]) throw new Error(`index.html has no import map entry for ${name}: rebuild with fieldllm build`);
    return new URL(imports[name], doc.baseURI).href;
  };
  return { tokenizers: at('@huggingface/tokenizers'), jinja: at('@huggingface/jinja') };
}

/**
 * Can this device run the engine (and, given a manifest, that model)? Never throws.
 * @param {Manifest} [manifest]
 * @returns {Promise<{ok: boolean, reason: string}>}
 */
export async function probeDevice(manifest) {
  try {
    const gpu = /** @type {GPU | undefined} */ (navigator.gpu);
    const result = await probe(gpu, manifest);
    return { ok: result.ok, reason: result.reason ?? '' };
  } catch (e) {
    return { ok: false, reason: `the GPU check failed: ${messageOf(e)}` };
  }
}

/** @param {Manifest} [manifest] */
export async function requireDevice(manifest) {
  const r = await probeDevice(manifest);
  if (!r.ok) throw new DeviceUnsupportedError(deviceAdvice(r.reason), r.reason);
}

/**
 * The probe's reason as a sentence for people. Its reasons already end with what to do ("use a recent Chrome or
 * Edge, or the local fallback server").
 * @param {string} reason @param {boolean} [downloaded]  whether the model is on the device already
 */
export function deviceAdvice(reason, downloaded = false) {
  return `This device cannot run the on-device model: ${reason}.${downloaded ? '' : ' Nothing was downloaded.'}`;
}

/**
 * Starts the engine worker and loads a stored model version into the GPU.
 * @param {string} folderUrl  absolute URL of the version's folder (served from the model store by sw.js)
 * @param {{onProgress?: (p: LoadProgress) => void, context?: number, signal?: AbortSignal}} [opts]
 * @returns {Promise<EngineClient>}
 */
export function loadEngine(folderUrl, opts = {}) {
  return EngineClient.create({
    baseUrl: folderUrl, shaderBaseUrl: SHADERS, vendorUrls: vendorUrlsFromImportMap(document),
    onProgress: opts.onProgress, context: opts.context, signal: opts.signal,
  });
}

/** Where this origin keeps the fallback server's access key (localStorage works on plain http too). */
const TOKEN_KEY = 'fieldllm-server-token';

/**
 * The fallback server's access key. `fieldllm serve --token` prints the app's address with the key in its fragment
 * (`…/#token=KEY`: a fragment never reaches a server, a log or a Referer): it is kept for this origin and taken out
 * of the address bar, so that later visits need no key in the address.
 * @param {Location} [loc] @param {Storage | null} [storage]
 * @returns {string | null}
 */
export function serverToken(loc = location, storage = safeLocalStorage()) {
  const fragment = new URLSearchParams(loc.hash.slice(1));
  const given = fragment.get('token');
  if (given) {
    storage?.setItem(TOKEN_KEY, given);
    fragment.delete('token');
    const rest = fragment.toString();
    history.replaceState(history.state, '', `${loc.pathname}${loc.search}${rest ? `#${rest}` : ''}`);
    return given;
  }
  return storage?.getItem(TOKEN_KEY) ?? null;
}

/** @returns {Storage | null} */
function safeLocalStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // storage blocked for this site
  }
}

/**
 * The fallback server's API at this app's own origin (`fieldllm serve` serves both), with its access key where the
 * page has one; rejects with the engine's ServerError where there is none (a static host, the server down), and
 * ServerAuthError when the server wants a key that the page does not have.
 * @returns {Promise<ServerEngine>}
 */
export function connectServer() {
  return ServerEngine.connect({ baseUrl: document.baseURI, token: serverToken() });
}
