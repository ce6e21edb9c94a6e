// insecure.js: a page that the browser gives no offline storage. Opened over plain http from another device, it is
// not a secure context: no service worker, no Cache Storage, no WebGPU. (A private window may also lack storage.)
// The app cannot be installed there, but the fallback server that served the page can still answer: the screen says
// both, and how to get the https address that installs.

import { connectServer } from './engine_host.js';
import { messageOf, nameOf } from './errors.js';

/** @typedef {import('../engine/index.js').ServerEngine} ServerEngine */
/**
 * What app.js offers this module: answering from the server, or a problem screen.
 * @typedef {object} AppSurface
 * @property {(reason: string, downloaded: boolean, given?: {server?: ServerEngine, notice?: string}) => Promise<void>} useServer
 * @property {{problem: (state: string, title: string, text: string) => void}} view
 */

/**
 * Why nothing can be stored here, and what to do.
 * @param {{origin: string, href: string}} [loc] @param {boolean} [secure]
 */
export function whyNoStorage(loc = location, secure = globalThis.isSecureContext) {
  if (!secure) {
    return `This page was opened over plain http (${loc.origin}), which is not a secure connection, so the browser ` +
      'gives it no offline storage: the app cannot be installed on this device from this address. To install it, ' +
      `open the app over https; ${new URL('/ca', loc.href).href} says how.`;
  }
  return 'This browser gives the page no offline storage (a private window?), so the app cannot be installed ' +
    'here. Open it in a normal window of Chrome or Edge.';
}

/**
 * What to add when the server could not be used: the key it wants, or nothing (no server here).
 * @param {unknown} e  connectServer's rejection
 */
export function serverHint(e) {
  if (nameOf(e) !== 'ServerAuthError') return '';
  return ' The server that served this page can answer instead, but it wants an access key: open, once on this ' +
    'device, the address that `fieldllm serve` printed (it ends in #token=…).';
}

/**
 * No offline storage: answer through the server that served the page, saying why the app cannot be installed; or,
 * where there is no usable server, say so.
 * @param {AppSurface} app
 */
export async function answerWithoutStorage(app) {
  const why = whyNoStorage();
  /** @type {ServerEngine} */
  let server;
  try {
    server = await connectServer();
  } catch (e) {
    console.info('no fallback server:', messageOf(e));
    app.view.problem('no-storage', 'Offline storage is unavailable', why + serverHint(e));
    return;
  }
  const notice = `${why} Meanwhile your questions go to the server at ${server.info.origin}, which answers them: ` +
    'this needs the network to that server.';
  await app.useServer('no offline storage', false, { server, notice });
}
