// main.js: the page's entry module (index.html loads it; no inline script, for a strict content-security-policy).

import { App } from './app.js';
import { messageOf } from './errors.js';

/** @type {import('./app.js').AppOptions} */
const DEFAULTS = {
  concurrency: 4, // files in flight: enough to fill a link, few enough for a phone and a shared uplink
  attempts: 5,
  retryBaseMs: 500,
  retryMaxMs: 15000,
  maxTokens: 512,
};

// a deployment (or a test) may tune these by defining FIELDLLM_OPTIONS before this module runs
const overrides = /** @type {any} */ (globalThis).FIELDLLM_OPTIONS ?? {};
const app = new App(document, { ...DEFAULTS, ...overrides });
app.start().catch((e) => {
  console.error(e);
  app.view.problem('failed', 'The app could not start', `${messageOf(e)}. Reload the page; if it happens again, ` +
    'clear this site\'s data in the browser settings and install again.', { label: 'Reload', run: () => location.reload() });
});
