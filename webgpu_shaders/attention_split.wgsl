// attention_split.wgsl: decode attention, first half ("flash decoding"): each workgroup takes GROUP query heads of
// one kv head and one split of SPLIT cache positions, so a step spreads over (num_heads / GROUP) * ceil(positions /
// SPLIT) workgroups, and each key and value a workgroup reads serves all GROUP heads (GQA: Qwen2.5-3B's 16 query
// heads share 2 kv heads, so GROUP = 8 reads the cache once per kv head instead of once per query head).
// attention_combine.wgsl merges the splits. It also does what bias.wgsl and rope_table.wgsl do for prefill, for the
// one new token, so decode needs neither dispatch.
//
// For the token at position pos = positions[0], query head h, kv head g = h / (num_heads / num_kv_heads),
// x_b = qkv[x] + bias[x] (qwen2's biases; zeros for llama) and rope() as rope_table.wgsl (HALF picks the layout):
//   q     = rope(q_b[h]) * scale;   k_new = rope(k_b[g]);   v_new = v_b[g]
//   k_cache[g, pos] = k_new, v_cache[g, pos] = v_new      (written by the workgroup holding g's first query head)
//   for split c (positions p in c*SPLIT .. min((c+1)*SPLIT, pos+1) - 1), keys K[p] = k_cache[g, p] (k_new at p = pos):
//     s_p = dot(q, K[p]);  m = max_p s_p;  l = sum_p exp(s_p - m);  o = sum_p exp(s_p - m) V[p]
//   part_o[h, c, :] = o,  part_ml[h, c] = (m, l, 0, 0)
// Splits past pos write nothing (attention_combine.wgsl reads only ceil((pos + 1) / SPLIT) of them). With a sliding
// WINDOW, positions before pos - WINDOW + 1 score nothing; a split with none left writes o = 0, (m, l) = (-big, 0),
// which the combine weighs 0.
// The cache holds f16 two per u32 (kv_f16.wgsl); k_new and v_new are rounded as stored (kv_round) before they score
// or weigh anything, so position pos counts exactly what the cache will give back later. Sums are f32.
//
// Bindings, in order (element counts; d = head_dim = 4 * D4, N = num_heads + 2 * num_kv_heads, S = splits):
//   0 positions u32[1]                       position of the token (< capacity)
//   1 cs        vec2<f32>[capacity * d / 2]  (cos, sin) of pos * theta^(-2i/d), [position, pair] (rope_table.wgsl)
//   2 qkv       f32[N * d]                   the token's q [H, d], k [KV, d], v [KV, d] projections, one after another
//   3 bias      f32[N * d]                   biases in the same layout (zeros when the model has none)
//   4 k_cache   vec2<u32>[num_kv_heads * capacity * d / 4]  this layer's keys, [kv head, position, d], rotated, f16
//                                                           pairs (a vec2 per 4 values)
//   5 v_cache   vec2<u32>[num_kv_heads * capacity * d / 4]  this layer's values, same layout
//   6 part      vec4<f32>[num_heads * S * (d / 4 + 1)]  partial outputs o [H, S, d/4] then (m, l, 0, 0) [H, S]
//   7 params    Params
//
// Dispatch: (num_heads / GROUP, S) workgroups of WG = GROUP * SPLIT * TP threads, S = ceil(capacity / SPLIT)
// (grids.js attentionSplitShape picks GROUP, SPLIT, TP). Scoring: TP threads per (head, position) pair (thread li:
// pair li / TP = head * SPLIT + position, vec4s li % TP, li % TP + TP, ... of the dot product); each head's maximum
// and sum come from tree reductions over its SPLIT pairs. Then the GROUP * D4 (head, vec4 column) pairs, times
// max(1, WG / (GROUP * D4)) slices of the positions, spread over the threads and meet in workgroup memory. Needs
// GROUP to divide num_heads / num_kv_heads, SPLIT a power of two, GROUP * D4 <= 256, D4 <= 64.
//
// EARLY (the engine's GPU tuning, kernels.json; on an H100 the kernel's median time fell 11% at KV 384 and 18% at
// KV 1,984, docs/PERFORMANCE.md): each thread loads the keys it will score and the values it will weigh into
// registers first, before the queries' bias and RoPE and the reductions, so those loads' latency overlaps that work
// instead of following it. Taken only where the registers suffice (at most 8 key and 8 value words per thread, one
// output triple per thread); otherwise the loads stay where they are. Results are the same either way.

override GROUP: u32 = 1u;     // query heads per workgroup, all of one kv head
override SPLIT: u32 = 32u;    // cache positions per split (per workgroup)
override TP: u32 = 2u;        // threads per (head, position) pair while scoring
override D4: u32 = 16u;       // head_dim / 4 (sizes the workgroup arrays)
override WG: u32 = GROUP * SPLIT * TP;  // threads per workgroup (not set by the host)
override HALF: bool = false;  // RoPE pair layout: false = interleaved (2i, 2i+1), true = half (i, i + d/2)
override WINDOW: u32 = 0u;    // sliding window (gemma3's sliding layers): keys pos - WINDOW + 1 .. pos only; 0: all
override EARLY: bool = false;  // keys and values loaded into registers first (see above)

override PAIRS: u32 = GROUP * SPLIT;          // (head, position) pairs scored
override COLS: u32 = GROUP * D4;              // (head, vec4 column) pairs of the output
override SLOTS: u32 = max(WG, COLS);          // (slice, head, column) partial outputs
override NSL: u32 = max(1u, WG / COLS);       // slices of the positions in the output phase
override KW: u32 = (D4 + TP - 1u) / TP;       // key words a thread scores with
override VW: u32 = (SPLIT + NSL - 1u) / NSL;  // value words a thread weighs (its slice's positions)
override EARLY_OK: bool = EARLY && KW <= 8u && VW <= 8u && WG >= COLS;
const NEG_BIG: f32 = -3.0e38;  // "minus infinity" that stays finite in exp(a - b)

struct Params {
  num_heads: u32,     // query heads
  num_kv_heads: u32,  // key/value heads (divides num_heads)
  head_dim: u32,      // elements per head, 4 * D4
  capacity: u32,      // positions per kv head in the cache, and rows of cs
  splits: u32,        // S: splits per head in part, ceil(capacity / SPLIT)
  scale: f32,         // score scale, usually 1 / sqrt(head_dim)
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> cs: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read_write> part: array<vec4<f32>>;
@group(0) @binding(7) var<uniform> params: Params;

var<workgroup> q_s: array<vec4<f32>, COLS>;    // rotated, scaled queries [GROUP, D4]
var<workgroup> k_new: array<vec4<f32>, D4>;    // rotated new key, as cached (the split holding pos only)
var<workgroup> v_new: array<vec4<f32>, D4>;    // new value, as cached (the split holding pos only)
var<workgroup> probs: array<f32, PAIRS>;       // exp(s_p - m) per (head, position)
var<workgroup> red: array<f32, WG>;            // reduction scratch
var<workgroup> slices: array<vec4<f32>, SLOTS>;
var<workgroup> pos_shared: u32;

// Each head's segment of SPLIT pairs reduced to its first element (max or sum), for pair threads li < PAIRS.
fn reduce_segments(li: u32, take_max: bool) {
  for (var stride = SPLIT / 2u; stride > 0u; stride /= 2u) {
    if (li < PAIRS && li % SPLIT < stride) {
      if (take_max) {
        red[li] = max(red[li], red[li + stride]);
      } else {
        red[li] += red[li + stride];
      }
    }
    workgroupBarrier();
  }
}

// Elements (a, b) of pair i, and the pair's (cos, sin) at pos: the same arithmetic as rope_table.wgsl.
fn pair_of(i: u32, d: u32) -> vec2<u32> {
  if (HALF) {
    return vec2<u32>(i, i + d / 2u);
  }
  return vec2<u32>(2u * i, 2u * i + 1u);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h0 = wid.x * GROUP;  // the workgroup's first query head
  let c = wid.y;
  let d = 4u * D4;
  let pairs = d / 2u;
  let group = params.num_heads / params.num_kv_heads;
  let g = h0 / group;
  if (li == 0u) {
    pos_shared = min(positions[0], params.capacity - 1u);
  }
  let pos = workgroupUniformLoad(&pos_shared);
  let p0 = c * SPLIT;
  if (p0 > pos) {
    return;  // a split past the token: attention_combine.wgsl does not read it
  }
  let count = min(SPLIT, pos + 1u - p0);  // positions of this split
  // its first position the token sees (WINDOW: pos - WINDOW + 1; count when none): positions first .. count - 1
  var first = 0u;
  if (WINDOW != 0u && pos + 1u > WINDOW) {
    first = min(count, max(p0, pos + 1u - WINDOW) - p0);
  }
  let ml_at = params.num_heads * params.splits * D4;  // where the (m, l) records start
  if (first == count) {  // wholly before the window: empty parts (never the split holding pos)
    for (var idx = li; idx < COLS; idx += WG) {
      part[((h0 + idx / D4) * params.splits + c) * D4 + idx % D4] = vec4<f32>(0.0);
    }
    if (li < GROUP) {
      part[ml_at + (h0 + li) * params.splits + c] = vec4<f32>(NEG_BIG, 0.0, 0.0, 0.0);
    }
    return;
  }
  let holds_new = pos < p0 + SPLIT;
  let first_row = g * params.capacity;  // cache row of position 0 for this kv head
  // this thread's scoring pair (head t / SPLIT, position p0 + t % SPLIT) and output triple (slice li / COLS, column)
  let t = li / TP;
  let hq = t / SPLIT;
  let j = t % SPLIT;
  let p = p0 + j;
  let scores = t < PAIRS && j < count && j >= first;
  var kreg: array<vec2<u32>, 8>;
  var vreg: array<vec2<u32>, 8>;
  if (EARLY_OK) {
    if (scores && p != pos) {
      for (var u = 0u; u < KW; u++) {
        let i = li % TP + u * TP;
        if (i < D4) {
          kreg[u] = k_cache[(first_row + p) * D4 + i];
        }
      }
    }
    if (li < COLS * NSL) {
      for (var u = 0u; u < VW; u++) {
        let jj = li / COLS + u * NSL;
        if (jj < count && p0 + jj != pos) {
          vreg[u] = v_cache[(first_row + p0 + jj) * D4 + li % D4];
        }
      }
    }
  }

  // queries (and, in the split holding pos, the new key and value): bias, RoPE, into workgroup memory
  for (var idx = li; idx < GROUP * pairs; idx += WG) {
    let hq = idx / pairs;
    let i = idx % pairs;
    let ab = pair_of(i, d);
    let r = cs[pos * pairs + i];
    let q_at = (h0 + hq) * d;
    let q0 = qkv[q_at + ab.x] + bias[q_at + ab.x];
    let q1 = qkv[q_at + ab.y] + bias[q_at + ab.y];
    q_s[hq * D4 + ab.x / 4u][ab.x % 4u] = (q0 * r.x - q1 * r.y) * params.scale;
    q_s[hq * D4 + ab.y / 4u][ab.y % 4u] = (q1 * r.x + q0 * r.y) * params.scale;
  }
  if (holds_new) {
    let k_at = (params.num_heads + g) * d;
    let v_at = (params.num_heads + params.num_kv_heads + g) * d;
    for (var i = li; i < pairs; i += WG) {
      let ab = pair_of(i, d);
      let r = cs[pos * pairs + i];
      let k0 = qkv[k_at + ab.x] + bias[k_at + ab.x];
      let k1 = qkv[k_at + ab.y] + bias[k_at + ab.y];
      k_new[ab.x / 4u][ab.x % 4u] = kv_round(k0 * r.x - k1 * r.y);
      k_new[ab.y / 4u][ab.y % 4u] = kv_round(k1 * r.x + k0 * r.y);
      v_new[ab.x / 4u][ab.x % 4u] = kv_round(qkv[v_at + ab.x] + bias[v_at + ab.x]);
      v_new[ab.y / 4u][ab.y % 4u] = kv_round(qkv[v_at + ab.y] + bias[v_at + ab.y]);
    }
  }
  workgroupBarrier();
  if (holds_new && h0 % group == 0u) {
    for (var i = li; i < D4; i += WG) {
      k_cache[(first_row + pos) * D4 + i] = kv_pack4(k_new[i]);  // exact: k_new holds f16 values already
      v_cache[(first_row + pos) * D4 + i] = kv_pack4(v_new[i]);
    }
  }

  // scores: threads li = TP t .. TP t + TP - 1 take pair t = (head t / SPLIT, position p0 + t % SPLIT)
  var part_s = 0.0;
  if (scores) {
    var acc = vec4<f32>(0.0);
    if (p == pos) {
      for (var i = li % TP; i < D4; i += TP) {
        acc += q_s[hq * D4 + i] * k_new[i];
      }
    } else if (EARLY_OK) {
      for (var u = 0u; u < KW; u++) {
        let i = li % TP + u * TP;
        if (i < D4) {
          acc += q_s[hq * D4 + i] * kv_unpack4(kreg[u]);
        }
      }
    } else {
      for (var i = li % TP; i < D4; i += TP) {
        acc += q_s[hq * D4 + i] * kv_unpack4(k_cache[(first_row + p) * D4 + i]);
      }
    }
    part_s = dot(acc, vec4<f32>(1.0));
  }
  red[li] = part_s;
  workgroupBarrier();
  // from here thread li < PAIRS owns pair li: head li / SPLIT, position li % SPLIT
  let live = li < PAIRS && li % SPLIT < count && li % SPLIT >= first;
  var s = NEG_BIG;
  if (live) {
    s = 0.0;
    for (var k = 0u; k < TP; k++) {
      s += red[li * TP + k];
    }
  }
  workgroupBarrier();
  red[li] = s;
  workgroupBarrier();
  reduce_segments(li, true);
  let seg = min(li / SPLIT, GROUP - 1u) * SPLIT;  // the first pair of this thread's head
  let m = red[seg];
  let e = select(0.0, exp(s - m), live);
  if (li < PAIRS) {
    probs[li] = e;
  }
  workgroupBarrier();  // every read of the maxima before red is rewritten
  red[li] = e;
  workgroupBarrier();
  reduce_segments(li, false);
  let l = red[seg];

  // o = sum_p probs[p] V[p]: (slice, head, column) triples, slice k takes positions k, k + nsl, ...
  let nsl = NSL;
  for (var idx = li; idx < COLS * nsl; idx += WG) {
    let hc = idx % COLS;
    let oh = hc / D4;
    let col = hc % D4;
    var o = vec4<f32>(0.0);
    if (EARLY_OK) {  // idx == li: one triple per thread, its values in vreg
      for (var u = 0u; u < VW; u++) {
        let jj = idx / COLS + u * nsl;
        if (jj < count) {
          o += probs[oh * SPLIT + jj] * select(kv_unpack4(vreg[u]), v_new[col], p0 + jj == pos);
        }
      }
    } else {
      for (var jj = idx / COLS; jj < count; jj += nsl) {
        let pj = p0 + jj;
        var v = v_new[col];
        if (pj != pos) {
          v = kv_unpack4(v_cache[(first_row + pj) * D4 + col]);
        }
        o += probs[oh * SPLIT + jj] * v;
      }
    }
    slices[idx] = o;
  }
  workgroupBarrier();
  for (var hc = li; hc < COLS; hc += WG) {
    var o = vec4<f32>(0.0);
    for (var k = 0u; k < nsl; k++) {
      o += slices[k * COLS + hc];
    }
    part[((h0 + hc / D4) * params.splits + c) * D4 + hc % D4] = o;
  }
  if (li < PAIRS && li % SPLIT == 0u) {
    part[ml_at + (h0 + li / SPLIT) * params.splits + c] = vec4<f32>(m, l, 0.0, 0.0);
  }
}
