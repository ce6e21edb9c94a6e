// Print the WebGPU adapter's features, limits and info as JSON (Dawn from npm `webgpu` under Node): what a GPU
// machine offers the engine (shader-f16, subgroups, subgroup-matrix configurations, workgroup memory). Not a test.
//
// Usage (on the GPU machine, after `source .device/on-device.sh`): node scripts/adapter_features.mjs

import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);
const adapter = await create([]).requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) throw new Error('no WebGPU adapter: run this on a machine with a GPU and its Vulkan driver');
/** @type {Record<string, number>} */
const limits = {};
for (const key in adapter.limits) limits[key] = /** @type {any} */ (adapter.limits)[key];
console.log(JSON.stringify({ features: [...adapter.features].sort(), limits, info: /** @type {any} */ (adapter).info }, null, 1));
process.exit(0);
