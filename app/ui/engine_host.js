// engine_host.js: the page's side of the engine. It asks the engine's probes which engine can answer on this device
// (before anything is downloaded): WebGPU on a real GPU, else the CPU engine (WebAssembly), else the fallback server
// that served the page (app/engine/choice.js decides, with the user's preference from the settings); it starts the
// engine worker on a stored version (app/engine/client.js), passing it the vendored libraries' URLs from this page's
// import map, or connects to the server (app/engine/server-client.js).

import {
  ENGINE_LABELS, EngineClient, ServerEngine, asPreference, chooseEngine, probe, probeCpu,
} from '../engine/index.js';
import { DeviceUnsupportedError, messageOf } from './errors.js';

/** @typedef {import('../engine/index.js').Manifest} Manifest */
/** @typedef {import('../engine/index.js').LoadProgress} LoadProgress */
/** @typedef {import('../engine/index.js').VendorUrls} VendorUrls */
/** @typedef {import('../engine/index.js').EngineKind} EngineKind */
/** @typedef {import('../engine/index.js').EnginePreference} EnginePreference */
/** @typedef {import('../engine/index.js').EngineChoice} EngineChoice */

export { ENGINE_LABELS };

const SHADERS = new URL('../../webgpu_shaders/', import.meta.url);
/** Where this origin keeps the user's engine preference (the settings' "Answers from"). */
const PREFERENCE_KEY = 'fieldllm-engine';

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

/** navigator.deviceMemory (GiB, a coarse lower bound) where the browser has it, else null. */
function deviceMemory() {
  const d = /** @type {{deviceMemory?: number}} */ (navigator).deviceMemory;
  return typeof d === 'number' && d > 0 ? d : null;
}

/**
 * The engine preference: the user's (stored on this device by the settings), else the site's (AppOptions.engine),
 * else automatic.
 * @param {string | undefined} siteDefault @param {Storage | null} [storage]
 * @returns {EnginePreference}
 */
export function enginePreference(siteDefault, storage = safeLocalStorage()) {
  return asPreference(storage?.getItem(PREFERENCE_KEY) ?? siteDefault);
}

/** @param {EnginePreference} preference @param {Storage | null} [storage] */
export function saveEnginePreference(preference, storage = safeLocalStorage()) {
  storage?.setItem(PREFERENCE_KEY, preference);
}

/**
 * @typedef {EngineChoice & {device: EngineKind[], reason: string}} DeviceChoice  device: the engines of this device
 *   in order (none: it cannot answer itself); reason: why not, for people (empty when it can)
 */

/**
 * Which engine answers here, and why: both probes, then choice.js. Never throws.
 * @param {Manifest} [manifest]  without one, only the browser and the adapter are checked
 * @param {EnginePreference} [preference]
 * @param {{context?: number}} [opts]
 * @returns {Promise<DeviceChoice>}
 */
export async function chooseDeviceEngine(manifest, preference = 'auto', opts = {}) {
  /** @type {{ok: boolean, reason?: string, info?: any}} */
  let gpu;
  try {
    gpu = await probe(/** @type {GPU | undefined} */ (navigator.gpu), manifest, { context: opts.context });
  } catch (e) {
    gpu = { ok: false, reason: `the GPU check failed: ${messageOf(e)}` };
  }
  /** @type {{ok: boolean, reason?: string}} */
  let cpu;
  try {
    cpu = probeCpu(manifest, { deviceMemory: deviceMemory(), context: opts.context });
  } catch (e) {
    cpu = { ok: false, reason: `the CPU engine check failed: ${messageOf(e)}` };
  }
  const choice = chooseEngine({ gpu, cpu, preference });
  const device = choice.order.filter((k) => k !== 'server');
  const reason = device.length ? '' : `${choice.notGpu ?? gpu.reason ?? 'no usable WebGPU'}; and the CPU engine: ` +
    `${choice.notCpu}`;
  return { ...choice, device, reason };
}

/**
 * Throws DeviceUnsupportedError when neither engine of this device can run the model (before its big files).
 * @param {Manifest} manifest @param {EnginePreference} [preference] @param {{context?: number}} [opts]
 */
export async function requireDevice(manifest, preference = 'auto', opts = {}) {
  const r = await chooseDeviceEngine(manifest, preference, opts);
  if (!r.device.length) throw new DeviceUnsupportedError(deviceAdvice(r.reason), r.reason);
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
 * Starts the engine worker and loads a stored model version into the GPU or, with engine "cpu", into WebAssembly.
 * @param {string} folderUrl  absolute URL of the version's folder (served from the model store by sw.js)
 * @param {{engine?: 'webgpu' | 'cpu', onProgress?: (p: LoadProgress) => void, context?: number,
 *          signal?: AbortSignal}} [opts]
 * @returns {Promise<EngineClient>}
 */
export function loadEngine(folderUrl, opts = {}) {
  return EngineClient.create({
    engine: opts.engine ?? 'webgpu', deviceMemory: deviceMemory(),
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
