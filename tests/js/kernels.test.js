// app/engine/gpu/kernels.js: the files the engine fetches (SHADER_FILES: each kernel of kernels.json and each library
// file it includes, once) and shaderSource, the one join of a kernel with its includes (pipelines.js, the Node
// benchmarks; tests/kernels/gpu.py joins them the same way for the kernel tests).

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';

import { KERNELS, SHADERS, SHADER_FILES, shaderSource } from '../../app/engine/gpu/kernels.js';

const DIR = new URL('../../webgpu_shaders/', import.meta.url);

test('SHADER_FILES: every kernel, then each included library once', () => {
  assert.deepEqual(SHADER_FILES.slice(0, SHADERS.length), [...SHADERS]);
  const libraries = SHADER_FILES.slice(SHADERS.length);
  assert.ok(libraries.includes('kquant.wgsl'));
  assert.equal(new Set(SHADER_FILES).size, SHADER_FILES.length);
  for (const name of SHADERS) for (const f of KERNELS[name].include ?? []) assert.ok(libraries.includes(f), f);
});

test('shaderSource puts the included files before the kernel; a kernel without includes is its file alone', async () => {
  /** @type {string[]} */
  const asked = [];
  const read = async (/** @type {string} */ f) => { asked.push(f); return readFile(new URL(f, DIR), 'utf8'); };
  const kquant = await readFile(new URL('kquant.wgsl', DIR), 'utf8');
  const matvecKq = await readFile(new URL('matvec_kq.wgsl', DIR), 'utf8');
  assert.equal(await shaderSource('matvec_kq.wgsl', read), `${kquant}\n${matvecKq}`);
  assert.deepEqual(asked, ['kquant.wgsl', 'matvec_kq.wgsl']);
  assert.equal(await shaderSource('matvec.wgsl', read), await readFile(new URL('matvec.wgsl', DIR), 'utf8'));
  assert.match(kquant, /override KTYPE/);
  assert.doesNotMatch(matvecKq, /fn k_codes|override KTYPE/);
});
