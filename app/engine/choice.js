// choice.js: which engine answers on this device, decided from the two probes (gpu/probe.js, cpu/probe.js) and the
// user's or site's preference, before anything is downloaded:
//
//   1. WebGPU, when a real GPU adapter fits the model;
//   2. otherwise the CPU engine (WebAssembly), when the browser and the device's memory can hold the model;
//   3. otherwise the local server (fieldllm serve), the last resort.
//
// A preference moves its engine to the front where it is possible ("server": the server first, the device's engines
// after it, for when the server cannot be reached). A fallback adapter (SwiftShader and other software renderers:
// WebGPU emulated on the CPU) is not a GPU: automatic choice passes it over for the CPU engine, which is far faster on
// the same cores (SmolLM2-135M: tens of tokens per second against 30-60 s per token); only a "webgpu" preference uses it.

/** @typedef {'webgpu' | 'cpu' | 'server'} EngineKind */
/** @typedef {'auto' | EngineKind} EnginePreference */
/**
 * @typedef {object} AdapterInfo  what gpu/probe.js reads from GPUAdapter.info
 * @property {string} [vendor]
 * @property {string} [architecture]
 * @property {string} [device]
 * @property {string} [description]
 * @property {boolean} [isFallbackAdapter]
 */
/**
 * @typedef {object} EngineChoice
 * @property {EngineKind[]} order   engines to try, best first; always ends with the server unless it is first
 * @property {string | null} notGpu  why WebGPU is not used (null: it is, or it was not needed)
 * @property {string | null} notCpu  why the CPU engine cannot run here (null: it can)
 * @property {boolean} fallbackAdapter  the only WebGPU adapter is a software one
 */

export const PREFERENCES = /** @type {const} */ (['auto', 'webgpu', 'cpu', 'server']);

/** Software WebGPU/Vulkan/D3D renderers, as adapter info names them. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|\bwarp\b|\bcpu\b/i;

/**
 * Is this adapter WebGPU emulated on the CPU? isFallbackAdapter where the browser says it, else its names.
 * @param {AdapterInfo | null | undefined} info
 */
export function isCpuAdapter(info) {
  if (!info) return false;
  if (info.isFallbackAdapter) return true;
  return SOFTWARE_ADAPTER.test([info.vendor, info.architecture, info.device, info.description].join(' '));
}

/** @param {AdapterInfo | null | undefined} info */
function adapterName(info) {
  const names = [info?.architecture, info?.description, info?.device].filter(Boolean);
  return names.length ? String(names[0]) : 'a software renderer';
}

/**
 * @param {unknown} value
 * @returns {EnginePreference}
 */
export function asPreference(value) {
  return PREFERENCES.includes(/** @type {any} */ (value)) ? /** @type {EnginePreference} */ (value) : 'auto';
}

/**
 * @param {{gpu: {ok: boolean, reason?: string, info?: AdapterInfo | null},
 *          cpu: {ok: boolean, reason?: string}, preference?: EnginePreference}} probes  the two probes' results
 * @returns {EngineChoice}
 */
export function chooseEngine({ gpu, cpu, preference = 'auto' }) {
  const fallbackAdapter = gpu.ok && isCpuAdapter(gpu.info);
  const gpuReal = gpu.ok && !fallbackAdapter;
  const gpuOk = gpuReal || (fallbackAdapter && preference === 'webgpu');
  /** @type {EngineKind[]} */
  const auto = [...(gpuOk ? /** @type {const} */ (['webgpu']) : []), ...(cpu.ok ? /** @type {const} */ (['cpu']) : [])];
  const device = preference === 'cpu' && cpu.ok ? /** @type {EngineKind[]} */ (['cpu', ...auto.filter((k) => k !== 'cpu')]) : auto;
  /** @type {EngineKind[]} */
  const order = preference === 'server' ? ['server', ...device] : [...device, 'server'];
  /** @type {string | null} */
  let notGpu = null;
  if (order[0] !== 'webgpu' && preference !== 'server') {
    if (fallbackAdapter && !gpuOk) {
      notGpu = `the only WebGPU adapter here (${adapterName(gpu.info)}) runs on the CPU, not a GPU, and is far slower ` +
        'than the CPU engine';
    } else if (!gpu.ok) {
      notGpu = gpu.reason ?? 'WebGPU is not available here';
    } else if (preference === 'cpu') {
      notGpu = 'the CPU engine is preferred in the settings';
    }
  }
  return { order, notGpu, notCpu: cpu.ok ? null : (cpu.reason ?? 'the CPU engine cannot run here'), fallbackAdapter };
}

/** What the screen calls each engine ("Answers from …"). */
export const ENGINE_LABELS = Object.freeze({
  webgpu: "this device's GPU (WebGPU)",
  cpu: "this device's CPU (WebAssembly)",
  server: 'the local server',
});
