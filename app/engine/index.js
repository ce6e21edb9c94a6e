// index.js: the engine's public surface, the one module the UI imports. Everything under gpu/ is the engine's own.
//
//   probe(navigator.gpu, manifest)   can this device's GPU run this package? (before anything is downloaded)
//   probeCpu(manifest, {deviceMemory})  can its CPU (WebAssembly) run it? (same)
//   chooseEngine({gpu, cpu, preference})  which engine answers: WebGPU, the CPU engine or the server (choice.js)
//   new EngineClient(...)            the engine in a Web Worker (WebGPU or CPU), OpenAI-style chat completions
//   new ServerEngine(...)            the same API from the fallback server, for devices without WebGPU
//   readBody, sha256Hex              the integrity checks the downloader runs on every package file

export { ENGINE_LABELS, PREFERENCES, asPreference, chooseEngine, isCpuAdapter } from './choice.js';
export { EngineClient } from './client.js';
export { probeCpu } from './cpu/probe.js';
export { probe } from './gpu/probe.js';
export { readBody, sha256Hex } from './integrity.js';
export { ServerEngine } from './server-client.js';

/** @typedef {import('./gpu/package.js').Manifest} Manifest */
/** @typedef {import('./engine.js').LoadProgress} LoadProgress */
/** @typedef {import('./vendor.js').VendorUrls} VendorUrls */
/** @typedef {import('./choice.js').EngineKind} EngineKind */
/** @typedef {import('./choice.js').EnginePreference} EnginePreference */
/** @typedef {import('./choice.js').EngineChoice} EngineChoice */
