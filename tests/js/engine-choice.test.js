// Which engine answers (app/engine/choice.js), whether the CPU engine can run a package here (app/engine/cpu/probe.js,
// before anything is downloaded), Engine.create({engine: 'cpu'}) (the worker's way to load it), and the speed line
// (app/ui/speed.js).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';

import { ENGINE_LABELS, asPreference, chooseEngine, isCpuAdapter } from '../../app/engine/choice.js';
import { MAX_HEAP_BYTES, requirements } from '../../app/engine/cpu/model.js';
import { probeCpu } from '../../app/engine/cpu/probe.js';
import { Engine } from '../../app/engine/engine.js';
import { CpuUnavailableError } from '../../app/engine/errors.js';
import { measureSpeed, speedText, storedSpeed } from '../../app/ui/speed.js';
import { fileFetch } from './helpers/file-fetch.js';
import { ROOT, smollm2Package } from './helpers/python.js';
import { vendor } from './helpers/vendor.js';

const GiB = 1024 ** 3;
const SWIFTSHADER = { vendor: 'google', architecture: 'swiftshader', device: '', description: '', isFallbackAdapter: false };
const REAL_GPU = { vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H100', isFallbackAdapter: false };
const CPU_OK = { ok: true };
const CPU_NO = { ok: false, reason: 'this browser has no WebAssembly (or it is turned off): use a recent browser' };

describe('chooseEngine', () => {
  test('a real GPU that fits: WebGPU, then the CPU, then the server', () => {
    const c = chooseEngine({ gpu: { ok: true, info: REAL_GPU }, cpu: CPU_OK });
    assert.deepEqual(c.order, ['webgpu', 'cpu', 'server']);
    assert.equal(c.notGpu, null);
    assert.equal(c.fallbackAdapter, false);
  });

  test('no WebGPU: the CPU engine, and the screen gets the probe\'s reason', () => {
    const c = chooseEngine({ gpu: { ok: false, reason: 'WebGPU is not available here (no navigator.gpu)' }, cpu: CPU_OK });
    assert.deepEqual(c.order, ['cpu', 'server']);
    assert.match(c.notGpu ?? '', /no navigator\.gpu/);
  });

  test('a GPU too small for the model: the CPU engine', () => {
    const c = chooseEngine({ gpu: { ok: false, reason: 'needs a 300 MiB buffer; this GPU allows 256 MiB' }, cpu: CPU_OK });
    assert.deepEqual(c.order, ['cpu', 'server']);
    assert.match(c.notGpu ?? '', /this GPU allows/);
  });

  test('a fallback adapter (SwiftShader) is not a GPU: the CPU engine, saying why', () => {
    for (const info of [SWIFTSHADER, { ...REAL_GPU, isFallbackAdapter: true }]) {
      const c = chooseEngine({ gpu: { ok: true, info }, cpu: CPU_OK });
      assert.deepEqual(c.order, ['cpu', 'server'], JSON.stringify(info));
      assert.equal(c.fallbackAdapter, true);
      assert.match(c.notGpu ?? '', /runs on the CPU, not a GPU/);
    }
    assert.match(chooseEngine({ gpu: { ok: true, info: SWIFTSHADER }, cpu: CPU_OK }).notGpu ?? '', /swiftshader/);
  });

  test('a fallback adapter with no CPU engine either: it is still not used; the server is', () => {
    const c = chooseEngine({ gpu: { ok: true, info: SWIFTSHADER }, cpu: CPU_NO });
    assert.deepEqual(c.order, ['server']);
    assert.match(c.notCpu ?? '', /no WebAssembly/);
  });

  test('neither engine: the server is the last resort, with both reasons', () => {
    const c = chooseEngine({ gpu: { ok: false, reason: 'no adapter' }, cpu: CPU_NO });
    assert.deepEqual(c.order, ['server']);
    assert.equal(c.notGpu, 'no adapter');
    assert.match(c.notCpu ?? '', /WebAssembly/);
  });

  test('preferences: server first (the device after it), cpu before a real GPU, webgpu takes a fallback adapter', () => {
    assert.deepEqual(chooseEngine({ gpu: { ok: true, info: REAL_GPU }, cpu: CPU_OK, preference: 'server' }).order,
      ['server', 'webgpu', 'cpu']);
    assert.equal(chooseEngine({ gpu: { ok: true, info: REAL_GPU }, cpu: CPU_OK, preference: 'server' }).notGpu, null);
    assert.deepEqual(chooseEngine({ gpu: { ok: true, info: REAL_GPU }, cpu: CPU_OK, preference: 'cpu' }).order,
      ['cpu', 'webgpu', 'server']);
    assert.deepEqual(chooseEngine({ gpu: { ok: true, info: SWIFTSHADER }, cpu: CPU_OK, preference: 'webgpu' }).order,
      ['webgpu', 'cpu', 'server']);
    // a preference that cannot be met falls back to the automatic order
    assert.deepEqual(chooseEngine({ gpu: { ok: false }, cpu: CPU_OK, preference: 'webgpu' }).order, ['cpu', 'server']);
    assert.deepEqual(chooseEngine({ gpu: { ok: true, info: REAL_GPU }, cpu: CPU_NO, preference: 'cpu' }).order,
      ['webgpu', 'server']);
  });

  test('isCpuAdapter and asPreference', () => {
    assert.equal(isCpuAdapter(REAL_GPU), false);
    assert.equal(isCpuAdapter(null), false);
    assert.equal(isCpuAdapter(SWIFTSHADER), true);
    assert.equal(isCpuAdapter({ vendor: 'mesa', architecture: '', device: 'llvmpipe (LLVM 15.0.6, 256 bits)' }), true);
    assert.equal(isCpuAdapter({ description: 'Microsoft Basic Render Driver' }), true);
    assert.equal(isCpuAdapter({ vendor: 'apple', architecture: 'common-3', description: 'Apple M2' }), false);
    assert.equal(asPreference('server'), 'server');
    assert.equal(asPreference('gpu'), 'auto');
    assert.equal(asPreference(null), 'auto');
    assert.equal(ENGINE_LABELS.cpu, "this device's CPU (WebAssembly)");
  });
});

/**
 * A package manifest of a llama shape with weights of `weightBytes` in one shard (nothing is fetched: the probe
 * reads sizes only).
 * @param {number} weightBytes
 * @param {Partial<Record<string, number>>} [config]
 */
function manifest(weightBytes, config = {}) {
  return {
    format: 'fieldllm-model', format_version: 1, name: 'm',
    config: {
      architecture: 'llama', vocab_size: 49152, hidden_size: 576, intermediate_size: 1536, num_layers: 30,
      num_heads: 9, num_kv_heads: 3, head_dim: 64, rms_norm_eps: 1e-5, rope_theta: 100000, context_length: 8192,
      rope_layout: 'half', ...config,
    },
    files: [{ path: 'weights-0.bin', size: weightBytes, sha256: '0'.repeat(64) }],
    tensors: { 'token_embd.weight': { storage: 'f32', shape: [1], chunks: [{ file: 'weights-0.bin', rows: [0, 1],
      planes: { data: [0, weightBytes] } }] } },
  };
}

describe('probeCpu', () => {
  test('the browser: no WebAssembly, or WebAssembly without SIMD, is refused with what to do', () => {
    const none = probeCpu(null, { wasm: null });
    assert.equal(none.ok, false);
    assert.match(none.reason ?? '', /no WebAssembly.*: use a recent/);
    const noSimd = probeCpu(null, { wasm: /** @type {any} */ ({ validate: () => false }) });
    assert.equal(noSimd.ok, false);
    assert.match(noSimd.reason ?? '', /no SIMD.*update the browser/);
    assert.equal(probeCpu(null).ok, true, 'Node has WebAssembly SIMD');
  });

  test('a heap past the 4 GiB a wasm32 memory addresses is refused before downloading, with the figures', () => {
    const m = manifest(4 * GiB - 32 * 1024 ** 2); // the weights alone fit; with the KV cache they do not
    const r = probeCpu(/** @type {any} */ (m), { context: 2048 });
    assert.equal(r.ok, false);
    assert.equal(r.needs?.total, requirements(/** @type {any} */ (m), 2048, 128).total);
    assert.ok((r.needs?.total ?? 0) > MAX_HEAP_BYTES);
    assert.match(r.reason ?? '', /needs \d+ MiB of WebAssembly memory .*KV cache .* for 2048 positions.*choose a smaller context or model/);
    // the same weights with a KV cache small enough fit
    assert.equal(probeCpu(/** @type {any} */ (manifest(3.5 * GiB)), { context: 256 }).ok, true);
  });

  test('navigator.deviceMemory: refused only when the heap is surely more than the device has', () => {
    const m = /** @type {any} */ (manifest(1.5 * GiB)); // ~1.6 GiB with the KV cache and activations
    assert.equal(probeCpu(m, { deviceMemory: null }).ok, true, 'unknown memory: tried');
    // 1 GiB reported means less than 2 GiB: it might fit
    assert.equal(probeCpu(m, { deviceMemory: 1 }).ok, true);
    const r = probeCpu(m, { deviceMemory: 0.5 }); // less than 1 GiB
    assert.equal(r.ok, false);
    assert.match(r.reason ?? '', /needs 1\.\d GiB of memory and this device has less than 1\.0 GiB \(the browser reports 0\.5 GiB\): use a device with more memory/);
    // 8 is the cap browsers report: more memory may be there
    assert.equal(probeCpu(/** @type {any} */ (manifest(3.5 * GiB)), { deviceMemory: 8, context: 256 }).ok, true);
  });

  test('a package the CPU engine cannot run, or that is not a package', () => {
    const r = probeCpu(/** @type {any} */ (manifest(1000, { num_kv_heads: 4 })));
    assert.equal(r.ok, false);
    assert.match(r.reason ?? '', /cannot run m: num_heads 9 is not a multiple of num_kv_heads 4/);
    assert.equal(probeCpu(/** @type {any} */ ({ format: 'other' })).ok, false);
  });
});

describe('Engine.create({engine: "cpu"})', () => {
  const files = {
    'manifest.json': JSON.stringify(manifest(1000, { num_kv_heads: 4 })),
  };
  /** @type {typeof fetch} */
  const fetchFake = async (url) => {
    const name = String(url).split('/').pop() ?? '';
    const body = /** @type {Record<string, string>} */ (files)[name];
    return body ? new Response(body) : new Response('', { status: 404 });
  };

  test('refuses with CpuUnavailableError (the probe\'s reason) before fetching any weight', async () => {
    await assert.rejects(Engine.create({ engine: 'cpu', baseUrl: 'http://x/m/', fetch: fetchFake, vendor: /** @type {any} */ ({}) }),
      (e) => e instanceof CpuUnavailableError && /num_kv_heads 4/.test(/** @type {Error} */ (e).message));
  });

  test('the default package: loads on the CPU layer (never the GPU one), info.engine "cpu", answers Paris', async () => {
    execFileSync(join(ROOT, 'scripts/build_wasm.sh'), { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    const dir = await smollm2Package();
    /** @type {string[]} */
    const stages = [];
    const engine = await Engine.create({
      engine: 'cpu', baseUrl: pathToFileURL(`${dir}/`), fetch: fileFetch, vendor, context: 256,
      gpuLayer: /** @type {any} */ ({ probe: () => { throw new Error('the GPU layer was asked'); } }),
      onProgress: (p) => { if (stages.at(-1) !== p.stage) stages.push(p.stage); },
    });
    try {
      assert.equal(engine.info.engine, 'cpu');
      assert.ok(Number(engine.info.threads) >= 1, String(engine.info.threads));
      assert.equal(engine.info.adapter, null);
      assert.equal(engine.context, 256);
      assert.deepEqual(stages, ['manifest', 'tokenizer', 'weights', 'ready']);
      const out = await engine.chat.completions.create({
        messages: [{ role: 'user', content: 'What is the capital of France?' }], max_tokens: 12,
      });
      assert.match(out.choices[0].message.content ?? '', /Paris/);
    } finally {
      engine.destroy();
    }
  });
});

describe('speed line', () => {
  test('speedText: words per second from tokens per second', () => {
    assert.equal(speedText(24), 'about 18 words per second');
    assert.equal(speedText(600), 'about 450 words per second');
    assert.equal(speedText(1.2), 'about one word per second');
    assert.equal(speedText(1 / 30), 'about one word every 40 seconds');
  });

  /** @returns {Storage} */
  function memoryStorage() {
    /** @type {Map<string, string>} */
    const kept = new Map();
    return /** @type {Storage} */ (/** @type {unknown} */ ({
      getItem: (/** @type {string} */ k) => kept.get(k) ?? null,
      setItem: (/** @type {string} */ k, /** @type {string} */ v) => { kept.set(k, v); },
    }));
  }

  /**
   * An engine whose stream yields `tokens` content chunks, `stepMs` apart on a fake clock, then (if it finishes) the
   * final chunk with timings; it stops when the signal aborts.
   * @param {number} tokens @param {number} stepMs @param {any[]} requests @param {{t: number}} clock
   */
  function timedEngine(tokens, stepMs, requests, clock) {
    return /** @type {any} */ ({
      chat: { completions: { create: async (/** @type {any} */ r) => {
        requests.push(r);
        return (async function* stream() {
          for (let i = 0; i < tokens; i++) {
            clock.t += stepMs;
            await new Promise((resolve) => setTimeout(resolve, 1));
            if (r.signal?.aborted) throw new DOMException('aborted', 'AbortError');
            yield { choices: [{ delta: { content: 'x' } }] };
          }
          yield { choices: [{ delta: {}, finish_reason: 'length' }],
            timings: { prompt_n: 30, prompt_ms: 500, predicted_n: tokens, predicted_ms: stepMs * (tokens - 1) } };
        })();
      } } },
    });
  }

  test('measureSpeed times a short greedy answer once and stores it per engine and version', async () => {
    /** @type {any[]} */
    const requests = [];
    const clock = { t: 0 };
    const storage = memoryStorage();
    const s = await measureSpeed(timedEngine(8, 50, requests, clock), storage, 'cpu', 'abc', { now: () => clock.t });
    assert.equal(s.tokensPerSecond, 20); // 7 decode steps in 350 ms, from the final chunk's timings
    assert.equal(s.slow, undefined);
    assert.equal(requests.length, 1);
    assert.ok(requests[0].max_tokens <= 8 && requests[0].temperature === 0 && requests[0].stream === true);
    assert.equal(storedSpeed(storage, 'cpu', 'abc')?.tokensPerSecond, 20);
    assert.equal(storedSpeed(storage, 'webgpu', 'abc'), null);
  });

  test('measureSpeed stops at its time budget: a rate from the tokens so far, or "slow" with none', async () => {
    const clock = { t: 0 };
    // the budget ends the stream (real time) after a few tokens: the rate is theirs (fake clock: 200 ms each)
    const partial = await measureSpeed(timedEngine(1000, 200, [], clock), null, 'cpu', 'abc',
      { budgetMs: 30, now: () => clock.t });
    assert.equal(partial.slow, undefined);
    assert.equal(partial.tokensPerSecond, 5);
    const never = /** @type {any} */ ({
      chat: { completions: { create: async (/** @type {any} */ r) => (async function* stream() {
        await new Promise((resolve) => r.signal.addEventListener('abort', resolve));
        throw new DOMException('aborted', 'AbortError');
      })() } },
    });
    const slow = await measureSpeed(never, null, 'webgpu', 'abc', { budgetMs: 20 });
    assert.equal(slow.slow, true);
    assert.equal(speedText({ ...slow, tokensPerSecond: 1 / 5 }), 'slow: under one word every 7 seconds');
  });
});
