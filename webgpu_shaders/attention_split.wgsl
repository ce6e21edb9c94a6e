// attention_split.wgsl: decode attention, first half ("flash decoding"): each workgroup takes one query head and one
// split of SPLIT cache positions, so a step spreads over num_heads * ceil(positions / SPLIT) workgroups instead of
// num_heads. attention_combine.wgsl merges the splits. It also does what bias.wgsl and rope_table.wgsl do for
// prefill, for the one new token, so decode needs neither dispatch.
//
// For the token at position pos = positions[0], query head h, kv head g = h / (num_heads / num_kv_heads),
// x_b = qkv[x] + bias[x] (qwen2's biases; zeros for llama) and rope() as rope_table.wgsl (HALF picks the layout):
//   q     = rope(q_b[h]) * scale;   k_new = rope(k_b[g]);   v_new = v_b[g]
//   k_cache[g, pos] = k_new, v_cache[g, pos] = v_new      (written by the first query head of each group)
//   for split c (positions p in c*SPLIT .. min((c+1)*SPLIT, pos+1) - 1), keys K[p] = k_cache[g, p] (k_new at p = pos):
//     s_p = dot(q, K[p]);  m = max_p s_p;  l = sum_p exp(s_p - m);  o = sum_p exp(s_p - m) V[p]
//   part_o[h, c, :] = o,  part_ml[h, c] = (m, l, 0, 0)
// Splits past pos write nothing (attention_combine.wgsl reads only ceil((pos + 1) / SPLIT) of them). With a sliding
// WINDOW, positions before pos - WINDOW + 1 score nothing; a split with none left writes o = 0, (m, l) = (-big, 0),
// which the combine weighs 0.
// The cache holds f16 two per u32 (kv_f16.wgsl); k_new and v_new are rounded as stored (kv_round) before they score
// or weigh anything, so position pos counts exactly what the cache will give back later. Sums are f32.
//
// Bindings, in order (element counts; d = head_dim, N = num_heads + 2 * num_kv_heads, S = splits):
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
// Dispatch: (num_heads, S) workgroups of WG threads, S = ceil(capacity / SPLIT). TP = WG / SPLIT threads score each
// position (thread j: position c*SPLIT + j / TP, vec4s j % TP, j % TP + TP, ... of the dot product), so each
// thread's chain of dependent loads is d / 4 / TP long; maximum and sum come from tree reductions; then the output
// dims split into d/4 vec4 columns, and the WG threads take (column, position slice) pairs: with d/4 < WG,
// WG / (d/4) threads share a column over interleaved positions and meet in workgroup memory. Needs d % 4 == 0,
// d <= 256, WG and SPLIT powers of two, SPLIT <= WG <= 256.

override WG: u32 = 64u;       // threads per workgroup
override SPLIT: u32 = 32u;    // cache positions per split (per workgroup)
override TP: u32 = WG / SPLIT;  // threads per position while scoring
override HALF: bool = false;  // RoPE pair layout: false = interleaved (2i, 2i+1), true = half (i, i + d/2)
override WINDOW: u32 = 0u;    // sliding window (gemma3's sliding layers): keys pos - WINDOW + 1 .. pos only; 0: all

const MAX_HEAD_DIM: u32 = 256u;
const MAX_D4: u32 = MAX_HEAD_DIM / 4u;
const NEG_BIG: f32 = -3.0e38;  // "minus infinity" that stays finite in exp(a - b)

struct Params {
  num_heads: u32,     // query heads
  num_kv_heads: u32,  // key/value heads (divides num_heads)
  head_dim: u32,      // elements per head, a multiple of 4
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

var<workgroup> q_s: array<vec4<f32>, MAX_D4>;    // rotated, scaled query
var<workgroup> k_new: array<vec4<f32>, MAX_D4>;  // rotated new key, as cached (the split holding pos only)
var<workgroup> v_new: array<vec4<f32>, MAX_D4>;  // new value, as cached (the split holding pos only)
var<workgroup> probs: array<f32, WG>;            // exp(s_p - m) of the split's positions (first SPLIT used)
var<workgroup> red: array<f32, WG>;              // reduction scratch
var<workgroup> slices: array<vec4<f32>, 256>;    // per (position slice, column) partial outputs (<= max(WG, d/4))
var<workgroup> pos_shared: u32;

fn reduce_max(li: u32) -> f32 {
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      red[li] = max(red[li], red[li + stride]);
    }
    workgroupBarrier();
  }
  return red[0];
}

fn reduce_sum(li: u32) -> f32 {
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      red[li] += red[li + stride];
    }
    workgroupBarrier();
  }
  return red[0];
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
  let h = wid.x;
  let c = wid.y;
  let d = params.head_dim;
  let d4 = d / 4u;
  let pairs = d / 2u;
  let group = params.num_heads / params.num_kv_heads;
  let g = h / group;
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
  let base = h * params.splits + c;
  if (first == count) {  // wholly before the window: an empty part (never the split holding pos)
    for (var col = li; col < d4; col += WG) {
      part[base * d4 + col] = vec4<f32>(0.0);
    }
    if (li == 0u) {
      part[params.num_heads * params.splits * d4 + base] = vec4<f32>(NEG_BIG, 0.0, 0.0, 0.0);
    }
    return;
  }
  let holds_new = pos < p0 + SPLIT;

  // query (and, in the split holding pos, the new key and value): bias, RoPE, into workgroup memory
  let q_at = h * d;
  let k_at = (params.num_heads + g) * d;
  let v_at = (params.num_heads + params.num_kv_heads + g) * d;
  for (var i = li; i < pairs; i += WG) {
    let ab = pair_of(i, d);
    let r = cs[pos * pairs + i];
    let q0 = qkv[q_at + ab.x] + bias[q_at + ab.x];
    let q1 = qkv[q_at + ab.y] + bias[q_at + ab.y];
    q_s[ab.x / 4u][ab.x % 4u] = (q0 * r.x - q1 * r.y) * params.scale;
    q_s[ab.y / 4u][ab.y % 4u] = (q1 * r.x + q0 * r.y) * params.scale;
    if (holds_new) {
      let k0 = qkv[k_at + ab.x] + bias[k_at + ab.x];
      let k1 = qkv[k_at + ab.y] + bias[k_at + ab.y];
      k_new[ab.x / 4u][ab.x % 4u] = kv_round(k0 * r.x - k1 * r.y);
      k_new[ab.y / 4u][ab.y % 4u] = kv_round(k1 * r.x + k0 * r.y);
      v_new[ab.x / 4u][ab.x % 4u] = kv_round(qkv[v_at + ab.x] + bias[v_at + ab.x]);
      v_new[ab.y / 4u][ab.y % 4u] = kv_round(qkv[v_at + ab.y] + bias[v_at + ab.y]);
    }
  }
  workgroupBarrier();
  let first_row = g * params.capacity;  // cache row of position 0 for this kv head
  if (holds_new && h % group == 0u) {
    for (var i = li; i < d4; i += WG) {
      k_cache[(first_row + pos) * d4 + i] = kv_pack4(k_new[i]);  // exact: k_new holds f16 values already
      v_cache[(first_row + pos) * d4 + i] = kv_pack4(v_new[i]);
    }
  }

  // scores: threads li = TP j .. TP j + TP - 1 take position p0 + j, then thread j adds their parts
  let j = li / TP;
  let p = p0 + j;
  var part_s = 0.0;
  if (j < count && j >= first) {
    var acc = vec4<f32>(0.0);
    if (p == pos) {
      for (var i = li % TP; i < d4; i += TP) {
        acc += q_s[i] * k_new[i];
      }
    } else {
      for (var i = li % TP; i < d4; i += TP) {
        acc += q_s[i] * kv_unpack4(k_cache[(first_row + p) * d4 + i]);
      }
    }
    part_s = dot(acc, vec4<f32>(1.0));
  }
  red[li] = part_s;
  workgroupBarrier();
  var s = NEG_BIG;
  if (li < count && li >= first) {
    s = 0.0;
    for (var t = 0u; t < TP; t++) {
      s += red[li * TP + t];
    }
  }
  workgroupBarrier();
  red[li] = s;
  workgroupBarrier();
  let m = reduce_max(li);
  let e = select(0.0, exp(s - m), li < count && li >= first);
  probs[li] = e;
  workgroupBarrier();  // reduce_max's last read of red[0] before red is rewritten
  red[li] = e;
  workgroupBarrier();
  let l = reduce_sum(li);

  // o = sum_p probs[p] V[p]: (column, slice) pairs, slice k takes positions k, k + nsl, ...
  let nsl = max(1u, WG / d4);
  for (var idx = li; idx < d4 * nsl; idx += WG) {
    let col = idx % d4;
    var o = vec4<f32>(0.0);
    for (var jj = idx / d4; jj < count; jj += nsl) {
      let pj = p0 + jj;
      var v = v_new[col];
      if (pj != pos) {
        v = kv_unpack4(v_cache[(first_row + pj) * d4 + col]);
      }
      o += probs[jj] * v;
    }
    slices[idx] = o;
  }
  workgroupBarrier();
  for (var col = li; col < d4; col += WG) {
    var o = vec4<f32>(0.0);
    for (var k = 0u; k < nsl; k++) {
      o += slices[k * d4 + col];
    }
    part[base * d4 + col] = o;
  }
  if (li == 0u) {
    part[params.num_heads * params.splits * d4 + base] = vec4<f32>(m, l, 0.0, 0.0);
  }
}
