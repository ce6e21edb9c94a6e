// audit.js: the audit record of every structured answer (issue 9 §3), kept in this browser's IndexedDB and never
// sent anywhere; exported from the screen as JSON Lines. The record has the same keys as `fieldllm serve --audit`'s
// (app/server/audit.py), plus what only the device knows (the form's input, the rules' sha256, the card's verdict).
//
//   const log = await AuditLog.open(indexedDB);  await log.add(record);  const all = await log.all();

import { sha256Hex } from '../field/sha256.js';

export const AUDIT_DB = 'fieldllm-audit';
export const AUDIT_STORE = 'records';

/** @typedef {import('../field/answers.js').Card} Card */
/** @typedef {import('./completion.js').Gathered} Gathered */
/**
 * @typedef {object} AuditInput
 * @property {Date} time
 * @property {string} kind
 * @property {'webgpu' | 'cpu' | 'server'} engine
 * @property {string} where
 * @property {string} model
 * @property {string | null} packageId
 * @property {{rules_version: string, sha256: string | null}} rules
 * @property {Record<string, any>} request     the OpenAI request body sent
 * @property {{notes: string, asset: string | null, fields: Array<{quantity: string, value: string, unit: string}>}} input
 * @property {Gathered} completion
 * @property {number | null} probability
 * @property {Card} card
 */

/**
 * The schema's grammar hash: the same key as Python's model_prep.reference.grammar.GrammarSpec.json_schema(schema).key, the
 * sha256 of "json_schema\n" and the schema's compact JSON in its own key order.
 * @param {unknown} schema
 */
export function schemaHash(schema) {
  return sha256Hex(new TextEncoder().encode(`json_schema\n${JSON.stringify(schema)}`));
}

/**
 * One record.
 * @param {AuditInput} a
 * @returns {Record<string, any>}
 */
export function auditRecord(a) {
  const r = a.request;
  const c = a.card;
  return {
    time: a.time.toISOString(),
    task: a.kind,
    engine: a.engine,
    where: a.where,
    model: a.model,
    package_id: a.packageId,
    rules_version: a.rules.rules_version,
    rules_sha256: a.rules.sha256,
    sampling: {
      temperature: r.temperature ?? null, top_p: r.top_p ?? null, seed: r.seed ?? null,
      max_tokens: r.max_tokens ?? null, logprobs: r.logprobs === true,
    },
    grammar: { kind: 'json_schema', sha256: schemaHash(r.response_format?.json_schema?.schema) },
    input: a.input,
    readings: c.readings,
    verdict: {
      status: c.status, escalate: c.escalate, fired: c.fired.map((f) => ({ rule: f.rule, message: f.message })),
      implausible: c.implausible.map((i) => i.message), valid: c.valid, problems: c.problems, cut: c.cut,
      unsupported_numbers: c.unsupported_numbers, model_suggests_escalation: c.model_suggests_escalation,
      confidence: c.confidence, decisive_probability: a.probability, safe_text: c.safe_text,
    },
    answer: c.answer,
    output: a.completion.content,
    finish_reason: a.completion.finish_reason,
    stopped: a.completion.stopped,
    error: a.completion.error,
    usage: a.completion.usage,
    timings: a.completion.timings,
  };
}

/** @param {Record<string, any>[]} records */
export function toJsonLines(records) {
  return records.map((r) => `${JSON.stringify(r)}\n`).join('');
}

/** @param {IDBRequest | IDBTransaction} r @param {string} done  the success event's name */
function settle(r, done) {
  return new Promise((resolve, reject) => {
    r.addEventListener(done, () => resolve('result' in r ? r.result : undefined));
    r.addEventListener('error', () => reject(r.error));
    r.addEventListener('abort', () => reject(r.error ?? new Error('the audit transaction was aborted')));
  });
}

export class AuditLog {
  /**
   * Opens (creating on first use) the audit database.
   * @param {IDBFactory} idb
   * @returns {Promise<AuditLog>}
   */
  static async open(idb) {
    const req = idb.open(AUDIT_DB, 1);
    req.addEventListener('upgradeneeded', () => {
      req.result.createObjectStore(AUDIT_STORE, { keyPath: 'id', autoIncrement: true });
    });
    return new AuditLog(/** @type {IDBDatabase} */ (await settle(req, 'success')));
  }

  /** @param {IDBDatabase} db */
  constructor(db) {
    this.db = db;
  }

  /** Stores one record (its `id` is added); resolves once it is written. @param {Record<string, any>} record */
  async add(record) {
    const tx = this.db.transaction(AUDIT_STORE, 'readwrite');
    tx.objectStore(AUDIT_STORE).add(record);
    await settle(tx, 'complete');
  }

  /** Every record, oldest first. @returns {Promise<Record<string, any>[]>} */
  async all() {
    const tx = this.db.transaction(AUDIT_STORE, 'readonly');
    return /** @type {Record<string, any>[]} */ (await settle(tx.objectStore(AUDIT_STORE).getAll(), 'success'));
  }
}

/**
 * Hands the records to the browser as a .jsonl download: a Blob and an object URL, no network.
 * @param {Document} doc @param {Record<string, any>[]} records @param {Date} now
 */
export function downloadJsonLines(doc, records, now) {
  const blob = new Blob([toJsonLines(records)], { type: 'application/x-ndjson' });
  const url = URL.createObjectURL(blob);
  const a = doc.createElement('a');
  a.href = url;
  a.download = `fieldllm-audit-${now.toISOString().replace(/[:.]/g, '-')}.jsonl`;
  doc.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
