// attention_prefill.wgsl: causal grouped-query attention for a prefill pass, a block of query tokens at a time
// ("flash attention": each K/V block is loaded once into workgroup memory for BQ queries; online softmax), the cache
// positions split over workgroups ("flash decoding", as attention_split.wgsl does for decode) when the pass reaches
// past SPLIT positions: attention_prefill_combine.wgsl then merges the splits.
//
// For query token t at position pos = positions[t] and query head h, with kv head g = h / (num_heads / num_kv_heads):
//   s_p = scale * dot(q[t, h, :], k_cache[g, p, :])               for cache positions p = 0 .. pos
//   (p = pos - WINDOW + 1 .. pos with a sliding window)
//   out[t, h, :] = sum_p softmax(s)_p * v_cache[g, p, :]
// rope_table.wgsl must have written positions 0 .. pos of this layer's cache (it writes all T tokens first). The
// cache holds f16 two per u32 (kv_f16.wgsl); each block is unpacked to f32 into workgroup memory, sums are f32.
// Positions rise through the pass: end = positions[tokens - 1] + 1 is one past its largest.
//
// Splits: the pass takes ns = min(splits, ceil(end / SPLIT)) splits (grids.js attentionPrefillSplits) of C = ceil(end
// / ns) positions rounded up to a multiple of BK; split z covers positions z C .. (z + 1) C - 1. With ns == 1 the
// workgroup writes out[t, h, :] itself (what a pass near the start of the cache takes: no combine dispatch); else
// each writes, per query t of its block, the split's unnormalized part (as attention_split.wgsl):
//   o = sum_p exp(s_p - m) v_cache[g, p, :],  m = max_p s_p,  l = sum_p exp(s_p - m)  over the positions it sees
// into part[t, h, z] = (o [d / 4 vec4s], (m, l, 0, 0)); a query that sees none of the split's positions (after its
// own, or before its window) gets o = 0, (m, l) = (-big, 0), which the combine weighs 0.
//
// Bindings, in order (element counts; d = head_dim):
//   0 positions u32[tokens]                                   position of each query token (< capacity)
//   1 q         vec4<f32>[tokens * num_heads * d / 4]         rotated queries, [token, head, d]
//   2 k_cache   vec2<u32>[num_kv_heads * capacity * d / 4]    [kv head, position, d], f16 pairs (a vec2 per 4)
//   3 v_cache   vec2<u32>[num_kv_heads * capacity * d / 4]    same layout
//   4 out       vec4<f32>[tokens * num_heads * d / 4]         [token, head, d] (written when ns == 1)
//   5 part      vec4<f32>[tokens * num_heads * splits * (d / 4 + 1)]  [token, head, split, (o, (m, l, 0, 0))]
//                                                             (written when ns > 1)
//   6 params    Params
//
// Dispatch: (num_heads, ceil(tokens / BQ), ns) workgroups of BQ * BK threads (workgroups with wid.z >= ns return).
// Thread (i, j) = (li / BK, li % BK) serves query token wid.y * BQ + i. Per block of BK cache positions: the block's
// keys go to workgroup memory, thread (i, j) scores position j against query i, each query's BK threads update its
// running maximum and sum from the block's scores, the values replace the keys in workgroup memory, and thread (i, j)
// accumulates output vec4s j, j + BK, ... of query i. Blocks run over the split's positions up to the largest
// position among the workgroup's queries; positions past a query's own get probability 0. Needs d % 4 == 0, d <= 128
// and d <= 16 BK; workgroup memory: 16 BQ (d / 4) + 16 BK (d / 4 + 1) + 4 BQ BK bytes at d = 128 (12.7 KiB for BQ
// 16, BK 8: within WebGPU's default 16 KiB).

override BQ: u32 = 16u;  // query tokens per workgroup
override BK: u32 = 8u;   // cache positions per block (and threads per query), at most MAX_BK
override WINDOW: u32 = 0u;  // sliding window (gemma3's sliding layers): keys pos - WINDOW + 1 .. pos only; 0: all
override SPLIT: u32 = 64u;  // cache positions per split, at least (a pass ending within SPLIT takes one split)

const MAX_HEAD_DIM: u32 = 128u;
const MAX_BK: u32 = 16u;
const MAX_VEC4_PER_THREAD: u32 = 4u;  // output vec4s a thread accumulates: ceil(d / 4 / BK)
const NEG_BIG: f32 = -3.0e38;         // "minus infinity" that stays finite in exp(a - b)
const ROW: u32 = MAX_HEAD_DIM / 4u + 1u;  // vec4s per row of kv_tile: padded so BK rows fall in different banks

struct Params {
  num_heads: u32,     // query heads
  num_kv_heads: u32,  // key/value heads (divides num_heads)
  head_dim: u32,      // elements per head, a multiple of 4, at most 128
  capacity: u32,      // positions per kv head in the cache
  tokens: u32,        // query tokens of the pass
  splits: u32,        // splits at most (part's third dimension)
  scale: f32,         // score scale, usually 1 / sqrt(head_dim)
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k_cache: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> v_cache: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(6) var<uniform> params: Params;

var<workgroup> q_tile: array<vec4<f32>, BQ * MAX_HEAD_DIM / 4u>;  // [query, d / 4], scaled
var<workgroup> kv_tile: array<vec4<f32>, BK * ROW>;               // [position, d / 4]: keys, then values
var<workgroup> scores: array<f32, BQ * BK>;                        // [query, position] of the block
var<workgroup> key_count: u32;                                     // largest position of the queries + 1
var<workgroup> key_start: u32;                                     // smallest first position they see

// Whether the query at position pos sees the key at position p.
fn seen(p: u32, pos: u32) -> bool {
  return p <= pos && (WINDOW == 0u || p + WINDOW > pos);
}

@compute @workgroup_size(BQ * BK)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let end = positions[params.tokens - 1u] + 1u;  // one past the pass's largest position
  let ns = min(params.splits, (end + SPLIT - 1u) / SPLIT);
  let z = wid.z;
  if (z >= ns) {
    return;  // a workgroup the grid has beyond the pass's splits
  }
  let chunk = ((end + ns - 1u) / ns + BK - 1u) / BK * BK;  // positions per split, a multiple of BK
  let h = wid.x;
  let i = li / BK;
  let j = li % BK;
  let d4 = params.head_dim / 4u;
  let g = h / (params.num_heads / params.num_kv_heads);
  let first_row = g * params.capacity;  // cache row of position 0 for this kv head
  let t0 = wid.y * BQ;
  let t = min(t0 + i, params.tokens - 1u);
  let pos = positions[t];
  for (var c = li; c < BQ * d4; c += BQ * BK) {
    let qt = min(t0 + c / d4, params.tokens - 1u);
    q_tile[c] = q[(qt * params.num_heads + h) * d4 + c % d4] * params.scale;
  }
  if (li == 0u) {
    var last = 0u;
    var lo = 0xFFFFFFFFu;
    for (var n = 0u; n < BQ; n++) {
      let pn = positions[min(t0 + n, params.tokens - 1u)];
      last = max(last, pn);
      lo = min(lo, select(0u, pn + 1u - WINDOW, WINDOW != 0u && pn + 1u > WINDOW));
    }
    key_count = min(last + 1u, params.capacity);
    key_start = lo / BK * BK;
  }
  let n = min(workgroupUniformLoad(&key_count), (z + 1u) * chunk);  // also the barrier after q_tile
  let start = max(workgroupUniformLoad(&key_start), z * chunk);     // both multiples of BK: so is start

  var m = NEG_BIG;  // query i's running maximum score
  var l = 0.0;      // its running softmax denominator
  var o: array<vec4<f32>, MAX_VEC4_PER_THREAD>;
  for (var p0 = start; p0 < n; p0 += BK) {
    for (var c = li; c < BK * d4; c += BQ * BK) {
      let p = min(p0 + c / d4, n - 1u);
      kv_tile[(c / d4) * ROW + c % d4] = kv_unpack4(k_cache[(first_row + p) * d4 + c % d4]);
    }
    workgroupBarrier();
    var acc = vec4<f32>(0.0);
    for (var c = 0u; c < d4; c++) {
      acc += q_tile[i * d4 + c] * kv_tile[j * ROW + c];
    }
    scores[li] = select(NEG_BIG, dot(acc, vec4<f32>(1.0)), seen(p0 + j, pos));
    workgroupBarrier();
    // query i's block: maximum, weights, sum (each of its BK threads computes the same)
    var m_new = m;
    for (var jj = 0u; jj < BK; jj++) {
      m_new = max(m_new, scores[i * BK + jj]);
    }
    let alpha = exp(m - m_new);  // rescales what was summed against the old maximum
    var e: array<f32, MAX_BK>;  // the block's exp(s - m_new) for query i
    var sum = 0.0;
    for (var jj = 0u; jj < BK; jj++) {
      e[jj] = select(0.0, exp(scores[i * BK + jj] - m_new), seen(p0 + jj, pos));
      sum += e[jj];
    }
    l = l * alpha + sum;
    m = m_new;
    for (var c = li; c < BK * d4; c += BQ * BK) {
      let p = min(p0 + c / d4, n - 1u);
      kv_tile[(c / d4) * ROW + c % d4] = kv_unpack4(v_cache[(first_row + p) * d4 + c % d4]);
    }
    workgroupBarrier();
    for (var v = 0u; v < MAX_VEC4_PER_THREAD; v++) {
      let c = j + v * BK;
      if (c < d4) {
        var ov = o[v] * alpha;
        for (var jj = 0u; jj < BK; jj++) {
          ov += e[jj] * kv_tile[jj * ROW + c];
        }
        o[v] = ov;
      }
    }
    workgroupBarrier();  // kv_tile and scores are rewritten by the next block
  }
  if (t0 + i >= params.tokens) {
    return;
  }
  if (ns == 1u) {
    let inv_l = 1.0 / l;
    for (var v = 0u; v < MAX_VEC4_PER_THREAD; v++) {
      let c = j + v * BK;
      if (c < d4) {
        out[(t * params.num_heads + h) * d4 + c] = o[v] * inv_l;
      }
    }
    return;
  }
  let rec = ((t * params.num_heads + h) * params.splits + z) * (d4 + 1u);  // part[t, h, z]
  for (var v = 0u; v < MAX_VEC4_PER_THREAD; v++) {
    let c = j + v * BK;
    if (c < d4) {
      part[rec + c] = o[v];
    }
  }
  if (j == 0u) {
    part[rec + d4] = vec4<f32>(m, l, 0.0, 0.0);
  }
}
