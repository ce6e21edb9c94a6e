// index.js: the engine's public surface, the one module the UI imports. Everything under gpu/ is the engine's own.
//
//   probe(navigator.gpu, manifest)   can this device run this package? (before anything is downloaded)
//   new EngineClient(...)            the engine in a Web Worker (WebGPU), OpenAI-style chat completions
//   new ServerEngine(...)            the same API from the fallback server, for devices without WebGPU
//   readBody, sha256Hex              the integrity checks the downloader runs on every package file

export { EngineClient } from './client.js';
export { probe } from './gpu/probe.js';
export { readBody, sha256Hex } from './integrity.js';
export { ServerEngine } from './server-client.js';

/** @typedef {import('./gpu/package.js').Manifest} Manifest */
/** @typedef {import('./engine.js').LoadProgress} LoadProgress */
/** @typedef {import('./vendor.js').VendorUrls} VendorUrls */
