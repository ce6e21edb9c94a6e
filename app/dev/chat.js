// chat.js: the dev page's logic. Streams answers from the worker engine; Stop aborts the request.

import { EngineClient } from '../engine/client.js';

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const status = $('status'), log = $('log');
const input = /** @type {HTMLInputElement} */ ($('input'));
const send = /** @type {HTMLButtonElement} */ ($('send')), stop = /** @type {HTMLButtonElement} */ ($('stop'));

const params = new URLSearchParams(location.search);
const packageUrl = params.get('package') ?? '/build/models/smollm2-135m-instruct/';
const shaderUrl = params.get('shaders') ?? '/webgpu_shaders/';

/** @type {{role: 'system' | 'user' | 'assistant', content: string}[]} */
const messages = [];
/** @type {AbortController | null} */
let running = null;

/** @param {string} text @param {string} [cls] */
function append(text, cls) {
  const span = document.createElement('span');
  if (cls) span.className = cls;
  span.textContent = text;
  log.append(span);
  return span;
}

try {
  const engine = await EngineClient.create({
    baseUrl: packageUrl, shaderBaseUrl: shaderUrl,
    onProgress: (p) => {
      status.textContent = p.stage === 'weights' && p.totalBytes
        ? `loading weights ${((100 * (p.loadedBytes ?? 0)) / p.totalBytes).toFixed(0)}%` : `loading: ${p.stage}`;
    },
  });
  status.textContent = `${engine.info?.model} ready (context ${engine.info?.context})`;
  input.disabled = send.disabled = false;

  stop.onclick = () => running?.abort();
  $('form').onsubmit = async (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question || running) return;
    input.value = '';
    messages.push({ role: 'user', content: question });
    append(`\n> ${question}\n`, 'user');
    const out = append('');
    running = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    const t0 = performance.now();
    let answer = '';
    try {
      const stream = await engine.chat.completions.create({
        messages, stream: true, signal: running.signal, stream_options: { include_usage: true },
      });
      for await (const chunk of stream) {
        answer += chunk.choices[0]?.delta.content ?? '';
        out.textContent = answer;
        if (chunk.usage) {
          const s = (performance.now() - t0) / 1000;
          status.textContent = `${chunk.usage.completion_tokens} tokens in ${s.toFixed(1)} s`;
        }
      }
    } catch (e) {
      status.textContent = `${/** @type {Error} */ (e).name}: ${/** @type {Error} */ (e).message}`;
    } finally {
      messages.push({ role: 'assistant', content: answer });
      running = null;
      send.disabled = false;
      stop.disabled = true;
    }
  };
} catch (e) {
  status.textContent = `could not start the engine: ${/** @type {Error} */ (e).message}`;
}
