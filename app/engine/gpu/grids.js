// grids.js: the dispatch grid of each kernel, as each .wgsl header states it (tests/kernels/kernels.py has the same
// functions for the kernel tests). Grids depend on the override constants a pipeline was compiled with; pipelines.js
// passes the same tuning values (webgpu_shaders/kernels.json) to both, so the two cannot drift apart.

/** @typedef {[number, number, number]} Grid  workgroups along x, y, z */

/** WebGPU's default (and guaranteed) maxComputeWorkgroupsPerDimension. */
export const MAX_GROUPS_PER_DIM = 65535;

/**
 * At least `groups` workgroups, folded into y past 65535; kernels linearize as wid.x + wid.y * num_workgroups.x.
 * @param {number} groups
 * @returns {Grid}
 */
export function grid1d(groups) {
  groups = Math.max(groups, 1);
  if (groups <= MAX_GROUPS_PER_DIM) return [groups, 1, 1];
  return [MAX_GROUPS_PER_DIM, Math.ceil(groups / MAX_GROUPS_PER_DIM), 1];
}

/** matvec.wgsl: ceil(rows / (TY * R)) groups. @param {number} rows @param {number} ty @param {number} r @returns {Grid} */
export const matvecGrid = (rows, ty, r) => grid1d(Math.ceil(rows / (ty * r)));

/** matvec_f32.wgsl: ceil(rows / R) groups. @param {number} rows @param {number} r @returns {Grid} */
export const matvecF32Grid = (rows, r) => grid1d(Math.ceil(rows / r));

/**
 * matmul.wgsl: tiles of 4*RV*WX rows by 4*TV*WY tokens.
 * @param {number} rows @param {number} tokens @param {{WX: number, WY: number, RV: number, TV: number}} t
 * @returns {Grid}
 */
export const matmulGrid = (rows, tokens, t) => [Math.ceil(rows / (4 * t.RV * t.WX)), Math.ceil(tokens / (4 * t.TV * t.WY)), 1];

/**
 * Workgroup memory of a matmul.wgsl / matmul_kq.wgsl tile in bytes: 32 columns (one group) of f32 for each of its
 * 4*RV*WX rows and 4*TV*WY tokens.
 * @param {{WX: number, WY: number, RV: number, TV: number}} t
 */
export const matmulTileBytes = (t) => 128 * (4 * t.RV * t.WX + 4 * t.TV * t.WY);

/** matmul_f32.wgsl: tiles of TILE rows by TILE tokens. @param {number} rows @param {number} tokens @param {number} tile @returns {Grid} */
export const matmulF32Grid = (rows, tokens, tile) => [Math.ceil(rows / tile), Math.ceil(tokens / tile), 1];

/** embed.wgsl: one thread per qweight word. @param {number} cols @param {number} tokens @param {number} qbits @param {number} wg @returns {Grid} */
export const embedGrid = (cols, tokens, qbits, wg) => [Math.ceil((cols * qbits) / 32 / wg), tokens, 1];

/** embed_f32.wgsl: one thread per element. @param {number} cols @param {number} tokens @param {number} wg @returns {Grid} */
export const embedF32Grid = (cols, tokens, wg) => [Math.ceil(cols / wg), tokens, 1];

/** rmsnorm.wgsl: one workgroup per row. @param {number} tokens @returns {Grid} */
export const rmsnormGrid = (tokens) => [tokens, 1, 1];

/** qk_norm.wgsl: one workgroup per (head, token). @param {number} heads @param {number} tokens @returns {Grid} */
export const qkNormGrid = (heads, tokens) => [heads, tokens, 1];

/** rope_table.wgsl: one thread per (token, query head, two pairs). @param {number} tokens @param {number} heads @param {number} headDim @param {number} wg @returns {Grid} */
export const ropeGrid = (tokens, heads, headDim, wg) => grid1d(Math.ceil((tokens * heads * headDim) / 4 / wg));

/** attention.wgsl: one workgroup per (query head, token). @param {number} heads @param {number} tokens @returns {Grid} */
export const attentionGrid = (heads, tokens) => [heads, tokens, 1];

/**
 * Whether attention_prefill.wgsl takes heads of this size (its registers and tiles); else prefill runs attention.wgsl.
 * @param {number} headDim @param {number} bk  BK @returns {boolean}
 */
export const attentionPrefillFits = (headDim, bk) => headDim <= 128 && headDim <= 16 * bk;

/**
 * attention_prefill.wgsl: one workgroup per (query head, block of BQ query tokens, split of the cache positions).
 * @param {number} heads @param {number} tokens @param {number} bq @param {number} splits  the pass's
 * (attentionPrefillSplits) @returns {Grid}
 */
export const attentionPrefillGrid = (heads, tokens, bq, splits) => [heads, Math.ceil(tokens / bq), splits];

/**
 * attention_prefill.wgsl's splits of the cache positions for a pass whose last position is end - 1, as the kernel
 * counts them: one per SPLIT positions, at most maxSplits (attentionPrefillMaxSplits).
 * @param {number} end @param {number} split  SPLIT @param {number} maxSplits @returns {number}
 */
export const attentionPrefillSplits = (end, split, maxSplits) => Math.min(maxSplits, Math.ceil(end / split));

/** Bytes of attention_prefill.wgsl's parts, per split: f32[P, H, D + 4] (o, then (m, l, 0, 0)). */
const prefillPartBytes = (/** @type {number} */ P, /** @type {number} */ heads, /** @type {number} */ headDim) =>
  4 * P * heads * (headDim + 4);

/** Bytes attention_prefill.wgsl's parts may take, at most (the run state's attnPrefillPart). */
export const PREFILL_PART_BUDGET = 32 * 2 ** 20;

/**
 * attention_prefill.wgsl's splits at most (its Params.splits): up to 16, no more than the context needs, and as many
 * as fit PREFILL_PART_BUDGET at P tokens per pass (1: the split path is off, the kernel writes its output itself).
 * @param {number} heads @param {number} headDim @param {number} S  context positions @param {number} P  tokens per
 * pass @param {number} split  SPLIT @returns {number}
 */
export function attentionPrefillMaxSplits(heads, headDim, S, P, split) {
  const fit = Math.floor(PREFILL_PART_BUDGET / prefillPartBytes(P, heads, headDim));
  return Math.max(1, Math.min(16, Math.ceil(S / split), fit));
}

/** Bytes of the parts buffer for maxSplits splits. @param {number} P @param {number} heads @param {number} headDim
 * @param {number} maxSplits */
export const attentionPrefillPartBytes = (P, heads, headDim, maxSplits) =>
  maxSplits > 1 ? maxSplits * prefillPartBytes(P, heads, headDim) : 16;

/**
 * attention_prefill_combine.wgsl: one thread per output vec4 of the pass; nothing when the pass takes one split
 * (attention_prefill.wgsl then wrote the output itself).
 * @param {number} tokens @param {number} heads @param {number} headDim @param {number} wg @param {number} splits
 * @returns {Grid}
 */
export const attentionPrefillCombineGrid = (tokens, heads, headDim, wg, splits) =>
  (splits > 1 ? grid1d(Math.ceil((tokens * heads * headDim) / 4 / wg)) : [0, 0, 0]);

/**
 * @typedef {{GROUP: number, SPLIT: number, TP: number, D4: number}} AttentionSplitShape  attention_split.wgsl's
 *   overrides: query heads per workgroup (all of one kv head), cache positions per split, threads per (head,
 *   position) pair while scoring, head_dim / 4; its workgroups have GROUP * SPLIT * TP threads
 */

/**
 * attention_split.wgsl's shape for a model's heads, within the tuning's caps (`WG` threads, `SPLIT` positions per
 * workgroup, `GROUP` query heads per workgroup where given). GROUP: the largest divisor of the query heads per kv head
 * with GROUP * head_dim / 4 <= 256 (the workgroup's queries and outputs fit in workgroup memory), so each key and value
 * read serves GROUP heads. SPLIT: a power of two, at most the cap and WG / GROUP. TP: a power of two up to 8 that fills
 * the rest of WG, to shorten each thread's chain of K loads where GROUP * SPLIT leaves threads over (head_dim 128 with
 * GROUP 8, as in Qwen2.5-3B: 8 heads x 32 positions x 1 thread = 256). The engine's GPU tuning caps GROUP at 1 (WG 128,
 * SPLIT 16: 8 threads per position, chains of 4 loads): on an H100 the grouped shapes were no faster at KV 1,920 and
 * slower at KV 384, since a split's time is its chains of dependent loads, not the cache bytes (docs/PERFORMANCE.md).
 * @param {number} headDim @param {number} heads @param {number} kvHeads
 * @param {Readonly<Record<string, number>>} cap  the tuning: {WG, SPLIT, and optionally GROUP}
 * @returns {AttentionSplitShape}
 */
export function attentionSplitShape(headDim, heads, kvHeads, cap) {
  const D4 = headDim / 4;
  const perKv = heads / kvHeads;
  let GROUP = 1;
  const maxGroup = Math.min(cap.WG, cap.GROUP ?? perKv);
  for (let gr = 1; gr <= perKv; gr++) if (perKv % gr === 0 && gr * D4 <= 256 && gr <= maxGroup) GROUP = gr;
  let SPLIT = 1;
  while (SPLIT * 2 <= cap.SPLIT && GROUP * SPLIT * 2 <= cap.WG) SPLIT *= 2;
  let TP = 1;
  while (TP < 8 && TP * 2 <= D4 && GROUP * SPLIT * TP * 2 <= cap.WG) TP *= 2;
  return { GROUP, SPLIT, TP, D4 };
}

/**
 * attention_split.wgsl: one workgroup per (GROUP query heads, split of SPLIT cache positions).
 * @param {number} heads @param {number} capacity @param {AttentionSplitShape} shape @returns {Grid}
 */
export const attentionSplitGrid = (heads, capacity, shape) =>
  [heads / shape.GROUP, attentionSplits(capacity, shape.SPLIT), 1];

/** Splits per head (attention_split.wgsl's grid height). @param {number} capacity @param {number} splitPositions */
export const attentionSplits = (capacity, splitPositions) => Math.ceil(capacity / splitPositions);

/**
 * attention_combine.wgsl: CG workgroups (column groups) per query head.
 * @param {number} heads @param {number} columnGroups  the kernel's CG @returns {Grid}
 */
export const attentionCombineGrid = (heads, columnGroups) => [heads, columnGroups, 1];

/** swiglu.wgsl, bias.wgsl: one thread per element. @param {number} n @param {number} wg @returns {Grid} */
export const elementwiseGrid = (n, wg) => grid1d(Math.ceil(n / wg));

/** argmax.wgsl main and main_pairs: one workgroup. @returns {Grid} */
export const argmaxGrid = () => [1, 1, 1];

/** argmax.wgsl main_blocks: blocks of WG * ITEMS logits. @param {number} n @param {number} wg @param {number} items */
export const argmaxBlocks = (n, wg, items) => Math.ceil(n / (wg * items));

/** argmax.wgsl's token bitmask: u32 words for n tokens (bit i % 32 of word i / 32 = token i). @param {number} n */
export const argmaxMaskWords = (n) => Math.ceil(n / 32);
