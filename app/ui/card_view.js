// card_view.js: a reviewed answer (app/field review()) as a card. cardContent() decides what the card says (no DOM,
// tested in Node); renderCard() draws it, as text only: nothing from the model is ever parsed as markup.
//
// What decides: the card's `escalate` (a rule fired, or the model itself asked for escalation), never the model's
// text. An answer that failed validation or was cut shows the rules' templated safe text, and its raw output only
// collapsed and labelled unvalidated. Only the schema's properties are shown, so the card is bounded by the schema.

/** @typedef {import('../field/answers.js').Card} Card */
/** @typedef {import('../field/rules.js').Task} Task */
/**
 * @typedef {object} CardContext
 * @property {string} where          "on this device (WebGPU)", "on this device's CPU" or "on the server <origin>"
 * @property {string} model          the model's name
 * @property {string} content        the raw model output
 * @property {string | null} finish_reason
 * @property {boolean} stopped       the answer was stopped before the engine finished it
 * @property {string | null} error   why the engine failed, if it did
 * @property {number} maxTokens      the request's token limit
 * @property {number | null} probability  the decisive field's probability (decisiveProbability)
 */
/**
 * @typedef {object} CardContent
 * @property {'escalate' | 'remeasure' | 'invalid' | 'ok' | 'none'} tone
 * @property {string} headline
 * @property {string[]} reasons         why it escalates (the rules that fired, the model's own rating)
 * @property {string | null} ending     how the answer ended, when it did not finish by itself
 * @property {{name: string, label: string, list: boolean, values: string[]}[]} fields  the validated answer, in schema
 *           order (list: an array property)
 * @property {string | null} safeText   in place of an answer that is not shown
 * @property {string | null} why        why it is not shown, when it ended by itself (the checks that failed)
 * @property {string | null} raw        the unvalidated output, shown collapsed; null for a valid answer
 * @property {string[]} notices
 * @property {string | null} checked    the readings the rules checked (the form's and those found in the notes)
 * @property {string | null} unsupported
 * @property {string | null} confidence
 * @property {string} provenance
 */

const LABELS = /** @type {Record<string, string>} */ ({
  asset: 'Asset', probable_causes: 'Probable causes', recommended_action: 'Recommended action',
  escalate_if: 'Escalate if', severity: 'Severity', probable: 'Probable problems', priority: 'Priority',
  interventions: 'Interventions', reading_summary: 'Reading', context: 'What it usually means',
  next_step: 'Next step',
});

/** @param {string} name */
export function fieldLabel(name) {
  return LABELS[name] ?? name.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

/** @param {Card} card @param {CardContext} ctx */
function ending(card, ctx) {
  if (!card.cut) return null;
  if (ctx.error) return `The answer failed: ${ctx.error}`;
  if (ctx.stopped) return 'Stopped before it was finished: the answer is incomplete.';
  if (ctx.finish_reason === 'length') {
    return `Cut at the token limit (${ctx.maxTokens} tokens): the answer is incomplete.`;
  }
  return `The answer ended early (${ctx.finish_reason ?? 'the connection broke'}): it is incomplete.`;
}

/** @param {Card} card */
function headline(card) {
  switch (card.status) {
    case 'escalate': return /** @type {const} */ (['escalate', 'ESCALATE']);
    case 'implausible': return /** @type {const} */ (['remeasure', 'RE-MEASURE']);
    case 'invalid_answer': return /** @type {const} */ (['invalid', 'ANSWER NOT SHOWN']);
    case 'in_range': return /** @type {const} */ (['ok', 'IN RANGE']);
    default: return /** @type {const} */ (['none', 'NO READINGS CHECKED']);
  }
}

/**
 * What the card says.
 * @param {Card} card @param {Task} task @param {Record<string, any>} schema  the task's schema (taskSchema)
 * @param {CardContext} ctx
 * @returns {CardContent}
 */
export function cardContent(card, task, schema, ctx) {
  const [tone, head] = headline(card);
  const reasons = card.fired.map((f) => f.message);
  if (card.model_suggests_escalation && card.answer) {
    reasons.push(`The assistant rated the ${fieldLabel(task.decisive).toLowerCase()} "${card.answer[task.decisive]}".`);
  }
  const clear = card.readings.length > 0 && !card.fired.length && !card.implausible.length;
  if (card.status === 'in_range' || (card.status === 'invalid_answer' && clear)) {
    reasons.push('No reading crossed a limit of the rules.');
  }
  if (card.status === 'no_readings') reasons.push('No reading was given or recognised: the rules checked nothing.');
  /** @type {CardContent['fields']} */
  const fields = [];
  if (card.valid && card.answer) {
    for (const name of Object.keys(schema.properties ?? {})) {
      const v = card.answer[name];
      if (v === undefined) continue;
      const list = schema.properties[name]?.type === 'array';
      fields.push({ name, label: fieldLabel(name), list, values: (Array.isArray(v) ? v : [v]).map(String) });
    }
  }
  let confidence = null;
  if (card.confidence) {
    const p = ctx.probability === null ? '' : ` (${Math.round(ctx.probability * 100)} %)`;
    confidence = `Confidence in the ${fieldLabel(task.decisive).toLowerCase()}: ${card.confidence}${p}`;
  }
  return {
    tone,
    headline: head,
    reasons,
    ending: ending(card, ctx),
    fields,
    safeText: card.valid ? null : card.safe_text,
    why: card.valid || card.cut ? null : `Why it is not shown: ${card.problems.join('; ')}.`,
    raw: card.valid ? null : ctx.content,
    notices: [...card.notices],
    checked: card.readings.length ? `Readings checked: ${card.readings.map((r) => r.text).join(', ')}` : null,
    unsupported: card.unsupported_numbers.length
      ? `Numbers in the answer that are not in your input: ${card.unsupported_numbers.join(', ')}. Check them.`
      : null,
    confidence,
    provenance: `Computed ${ctx.where} · ${ctx.model} · rules ${card.rules_version}`,
  };
}

/**
 * @param {Document} doc @param {string} tag @param {string} cls @param {string} [text]
 * @returns {HTMLElement}
 */
function el(doc, tag, cls, text) {
  const e = doc.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * The card element. data-* attributes name its state for styles and tests.
 * @param {Document} doc @param {Card} card @param {CardContent} c @param {string} engine  "webgpu", "cpu" or "server"
 * @returns {HTMLElement}
 */
export function renderCard(doc, card, c, engine) {
  const root = el(doc, 'article', `answer-card tone-${c.tone}`);
  Object.assign(root.dataset, {
    status: card.status, escalate: String(card.escalate), valid: String(card.valid), cut: String(card.cut),
    engine, confidence: card.confidence ?? 'none',
  });
  const verdict = el(doc, 'header', 'verdict');
  verdict.append(el(doc, 'strong', 'headline', c.headline));
  if (c.reasons.length) {
    const list = el(doc, 'ul', 'reasons');
    for (const r of c.reasons) list.append(el(doc, 'li', '', r));
    verdict.append(list);
  }
  root.append(verdict);
  if (c.ending) root.append(el(doc, 'p', 'ending', c.ending));
  if (c.fields.length) {
    const dl = el(doc, 'dl', 'answer');
    for (const f of c.fields) {
      const dt = el(doc, 'dt', '', f.label);
      const dd = el(doc, 'dd', '');
      dd.dataset.field = f.name;
      if (!f.list) {
        dd.textContent = f.values.join(' ');
      } else {
        const ul = el(doc, 'ul', '');
        for (const v of f.values) ul.append(el(doc, 'li', '', v));
        dd.append(ul);
      }
      dl.append(dt, dd);
    }
    root.append(dl);
  }
  if (c.safeText) root.append(el(doc, 'p', 'safe-text', c.safeText));
  if (c.why) root.append(el(doc, 'p', 'why', c.why));
  for (const n of c.notices) root.append(el(doc, 'p', 'card-notice', n));
  if (c.unsupported) root.append(el(doc, 'p', 'unsupported', c.unsupported));
  if (c.confidence) root.append(el(doc, 'p', 'confidence', c.confidence));
  if (c.checked) root.append(el(doc, 'p', 'checked', c.checked));
  if (c.raw !== null) {
    const details = el(doc, 'details', 'raw');
    details.append(el(doc, 'summary', '', 'Model output (unvalidated: not checked, do not act on it)'),
      el(doc, 'pre', '', c.raw || '(empty)'));
    root.append(details);
  }
  root.append(el(doc, 'footer', 'provenance', c.provenance));
  return root;
}
