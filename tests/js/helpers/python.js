// python.js: run tests/js/helpers/oracle.py with the project's virtualenv and get its JSON answer, and prepare the
// model packages the tests need (into a temporary folder per test process, so parallel test files never race).

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const ORACLE = join(ROOT, 'tests/js/helpers/oracle.py');

/** The interpreter: $FIELDLLM_PYTHON, else the virtualenv's ($FIELDLLM_VENV or .venv). */
export function pythonPath() {
  if (process.env.FIELDLLM_PYTHON) return process.env.FIELDLLM_PYTHON;
  const venv = process.env.FIELDLLM_VENV ?? join(ROOT, '.venv');
  const python = join(venv, 'bin/python');
  if (!existsSync(python)) throw new Error(`no Python at ${python}: run scripts/setup-python test (or set FIELDLLM_PYTHON)`);
  return python;
}

/**
 * @param {string} command  one of oracle.py's COMMANDS
 * @param {Record<string, unknown>} request
 * @returns {Promise<any>}
 */
export function oracle(command, request) {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(pythonPath(), [ORACLE], { cwd: ROOT, maxBuffer: 256 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`oracle.py ${command} failed: ${error.message}\n${stderr}`));
      else resolvePromise(JSON.parse(stdout));
    });
    child.stdin?.end(JSON.stringify({ command, ...request }));
  });
}

/** @type {string | null} */
let scratch = null;
/** A temporary folder for this test process. */
export function scratchDir() {
  if (scratch === null) {
    const dir = mkdtempSync(join(tmpdir(), 'fieldllm-js-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    scratch = dir;
  }
  return scratch;
}

/** @type {Promise<string> | null} */
let smollm2 = null;
/** The default model's package folder (SmolLM2-135M-Instruct), prepared once per test process. */
export function smollm2Package() {
  smollm2 ??= oracle('prepare', { out: join(scratchDir(), 'smollm2') }).then((r) => r.package);
  return smollm2;
}

/** @type {Promise<{path: string, chat_template: string}> | null} */
let tiny = null;
/** tests/tiny_models.py's tokenizer.json and ChatML template. */
export function tinyTokenizer() {
  tiny ??= oracle('tiny-tokenizer', { out: join(scratchDir(), 'tiny-tokenizer.json') });
  return tiny;
}
