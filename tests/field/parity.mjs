// parity.mjs: reads {"cases": [{kind, text, completion}]} on stdin, prints the JS side's outputs as JSON (one per
// case: readings, verdict, card). tests/field/test_parity.py compares them with the Python side's.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { evaluate, loadRules, loadTasks, parseReadings, review, unsupportedNumbers } from '../../app/field/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const rules = loadRules(new Uint8Array(readFileSync(join(root, 'app/field/rules.json'))));
const tasks = loadTasks(new Uint8Array(readFileSync(join(root, 'app/field/tasks.json'))));
const { cases } = JSON.parse(readFileSync(0, 'utf8'));
const out = cases.map(({ kind, text, completion }) => {
  const readings = parseReadings(text, rules, kind);
  return {
    readings,
    verdict: evaluate(kind, readings, text, rules),
    card: review(kind, text, [], completion, rules, tasks),
    unsupported: unsupportedNumbers(completion.content, text),
  };
});
process.stdout.write(JSON.stringify(out));
