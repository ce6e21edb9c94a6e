// index.js: field answers, the browser side (the model suggests, deterministic rules decide). The same API as the
// Python package app/field (camelCase names, the same JSON shapes); tests/field/vectors.json holds the outputs both
// must produce. No DOM: the screens fetch rules.json and tasks.json and hand them in.

export { diagnosisProblems, parseAnswer, review, safeName, schemaProblems, taskRequest, taskSchema } from './answers.js';
export { evaluate, resolveAsset } from './evaluate.js';
export { convert, fmtNum, round4, unsupportedNumbers } from './numbers.js';
export { detectAsset, parseReadings, readingsFromForm } from './readings.js';
export { KINDS, ReadingError, Rules, RulesError, Tasks, loadRules, loadTasks } from './rules.js';
export { sha256Hex } from './sha256.js';
