// attention_decode.wgsl: decode attention in one dispatch, for caches short enough that one workgroup per query head
// can walk them: the head's output row is written here, so no partials and no attention_combine.wgsl. Each dispatch
// costs about 5-6 us on an H100 under Dawn whatever it does (docs/PERFORMANCE.md), and at a few hundred positions
// attention_split.wgsl + attention_combine.wgsl spend most of their two dispatches' time on that; the engine takes
// this kernel while the token's position is below its kernels.json max_positions and the split kernels beyond
// (ops.js).
// The prologue is attention_split.wgsl's: the new token's q/k/v bias and RoPE, and its key and value into the cache.
//
// For the token at position pos = positions[0], query head h = workgroup x, kv head g = h / (num_heads / num_kv_heads),
// x_b = qkv[x] + bias[x] and rope() as rope_table.wgsl (HALF picks the pair layout):
//   q = rope(q_b[h]) * scale;   k_new = rope(k_b[g]);   v_new = v_b[g]   (k_new, v_new rounded as cached, kv_round)
//   k_cache[g, pos] = k_new, v_cache[g, pos] = v_new    (written by the workgroup of g's first query head; the others
//                                                        take position pos from workgroup memory, never the cache)
//   s_p = dot(q, K[p]) for p = first .. pos (first = pos - WINDOW + 1 with a sliding window, else 0)
//   out[h, :] = sum_p exp(s_p - max s) V[p] / sum_p exp(s_p - max s)
// The softmax is online over blocks of PB = WG / TP positions: per block its maximum and sum (tree reductions), the
// running (m, l) and each thread's output share rescaled by exp(m_old - m_new). Sums are f32; the result equals the
// split kernels' up to rounding.
//
// Bindings, in order (element counts; d = head_dim = 4 * D4, N = num_heads + 2 * num_kv_heads):
//   0 positions u32[1]                       position of the token (< capacity)
//   1 cs        vec2<f32>[capacity * d / 2]  (cos, sin) of pos * theta^(-2i/d), [position, pair] (rope_table.wgsl)
//   2 qkv       f32[N * d]                   the token's q [H, d], k [KV, d], v [KV, d] projections, one after another
//   3 bias      f32[N * d]                   biases in the same layout (zeros when the model has none)
//   4 k_cache   vec2<u32>[num_kv_heads * capacity * d / 4]  [kv head, position, d], rotated, f16 pairs
//   5 v_cache   vec2<u32>[num_kv_heads * capacity * d / 4]  same layout
//   6 out       vec4<f32>[num_heads * d / 4]  attention output, [head, d]
//   7 params    Params
//
// Dispatch: (num_heads, 1, 1) workgroups of WG threads. Scoring: TP threads per position (thread li: position
// li / TP of the block, vec4s li % TP, li % TP + TP, ... of the dot product, KW of them, loaded before any is used).
// Output: (slice, vec4 column) pairs, NSL = WG / D4 slices, slice k weighing the block's positions k, k + NSL, ...
// (VW of them per block), summed over the slices in workgroup memory at the end. Needs WG and TP powers of two,
// TP <= WG, D4 <= WG, and KW, VW <= MAX_W (D4 / TP <= 32: grids.js attentionDecodeShape raises TP for larger heads).

override WG: u32 = 256u;      // threads per workgroup
override TP: u32 = 1u;        // threads per position while scoring
override D4: u32 = 16u;       // head_dim / 4
override HALF: bool = false;  // RoPE pair layout: false = interleaved (2i, 2i+1), true = half (i, i + d/2)
override WINDOW: u32 = 0u;    // sliding window (gemma3's sliding layers): keys pos - WINDOW + 1 .. pos only; 0: all

override PB: u32 = WG / TP;                   // positions per block
override NSL: u32 = WG / D4;                  // slices of a block's positions in the output phase
override KW: u32 = (D4 + TP - 1u) / TP;       // key words a thread scores with
override VW: u32 = (PB + NSL - 1u) / NSL;     // value words a thread weighs per block
const MAX_W: u32 = 32u;        // largest KW and VW: a thread's words in flight (registers)
const NEG_BIG: f32 = -3.0e38;  // "minus infinity" that stays finite in exp(a - b)

struct Params {
  num_heads: u32,     // query heads
  num_kv_heads: u32,  // key/value heads (divides num_heads)
  head_dim: u32,      // elements per head, 4 * D4
  capacity: u32,      // positions per kv head in the cache, and rows of cs
  scale: f32,         // score scale, usually 1 / sqrt(head_dim)
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> cs: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(7) var<uniform> params: Params;

var<workgroup> q_s: array<vec4<f32>, D4>;    // rotated, scaled query
var<workgroup> k_new: array<vec4<f32>, D4>;  // rotated new key, as cached
var<workgroup> v_new: array<vec4<f32>, D4>;  // new value, as cached
var<workgroup> probs: array<f32, PB>;        // exp(s_p - m) of the block's positions
var<workgroup> red: array<f32, WG>;          // reduction scratch
var<workgroup> slices: array<vec4<f32>, WG>; // (slice, column) output shares
var<workgroup> pos_shared: u32;

// red[0 .. PB - 1] reduced to red[0] (max or sum).
fn reduce_block(li: u32, take_max: bool) {
  for (var stride = PB / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      if (take_max) {
        red[li] = max(red[li], red[li + stride]);
      } else {
        red[li] += red[li + stride];
      }
    }
    workgroupBarrier();
  }
}

// Elements (a, b) of pair i: the same layouts as rope_table.wgsl.
fn pair_of(i: u32, d: u32) -> vec2<u32> {
  if (HALF) {
    return vec2<u32>(i, i + d / 2u);
  }
  return vec2<u32>(2u * i, 2u * i + 1u);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x;
  let d = 4u * D4;
  let pairs = d / 2u;
  let group = params.num_heads / params.num_kv_heads;
  let g = h / group;
  if (li == 0u) {
    pos_shared = min(positions[0], params.capacity - 1u);
  }
  let pos = workgroupUniformLoad(&pos_shared);
  var first = 0u;
  if (WINDOW != 0u && pos + 1u > WINDOW) {
    first = pos + 1u - WINDOW;
  }
  let first_row = g * params.capacity;  // cache row of position 0 for this kv head

  // the query, the new key and value: bias, RoPE, into workgroup memory
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
    let k0 = qkv[k_at + ab.x] + bias[k_at + ab.x];
    let k1 = qkv[k_at + ab.y] + bias[k_at + ab.y];
    k_new[ab.x / 4u][ab.x % 4u] = kv_round(k0 * r.x - k1 * r.y);
    k_new[ab.y / 4u][ab.y % 4u] = kv_round(k1 * r.x + k0 * r.y);
    v_new[ab.x / 4u][ab.x % 4u] = kv_round(qkv[v_at + ab.x] + bias[v_at + ab.x]);
    v_new[ab.y / 4u][ab.y % 4u] = kv_round(qkv[v_at + ab.y] + bias[v_at + ab.y]);
  }
  workgroupBarrier();
  if (h % group == 0u) {
    for (var i = li; i < D4; i += WG) {
      k_cache[(first_row + pos) * D4 + i] = kv_pack4(k_new[i]);  // exact: k_new holds f16 values already
      v_cache[(first_row + pos) * D4 + i] = kv_pack4(v_new[i]);
    }
  }

  let t = li / TP;                    // this thread's scoring position in a block
  let col = li % D4;                  // its output column and slice
  let sl = li / D4;
  let weighs = sl < NSL;
  var m = NEG_BIG;                    // running maximum and sum (the same in every thread)
  var l = 0.0;
  var o = vec4<f32>(0.0);             // this thread's share of the output column, relative to m
  for (var b0 = first; b0 <= pos; b0 += PB) {
    let count = min(PB, pos + 1u - b0);
    // scores: the block's keys loaded first, then the dot products
    let p = b0 + t;
    let scores = t < count;
    var kreg: array<vec2<u32>, MAX_W>;
    if (scores && p != pos) {
      for (var u = 0u; u < KW; u++) {
        let i = li % TP + u * TP;
        if (i < D4) {
          kreg[u] = k_cache[(first_row + p) * D4 + i];
        }
      }
    }
    var acc = vec4<f32>(0.0);
    if (scores) {
      for (var u = 0u; u < KW; u++) {
        let i = li % TP + u * TP;
        if (i < D4) {
          acc += q_s[i] * select(kv_unpack4(kreg[u]), k_new[i], p == pos);
        }
      }
    }
    red[li] = dot(acc, vec4<f32>(1.0));
    workgroupBarrier();
    // from here thread li < PB owns position b0 + li of the block
    let live = li < count;
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
    reduce_block(li, true);
    let m_new = max(m, red[0]);
    let e = select(0.0, exp(s - m_new), live);
    if (li < PB) {
      probs[li] = e;
    }
    workgroupBarrier();  // every read of the block maximum before red is rewritten
    red[li] = e;
    workgroupBarrier();
    reduce_block(li, false);
    let alpha = exp(m - m_new);  // 0 for the first block (m = NEG_BIG)
    l = l * alpha + red[0];
    m = m_new;
    // the output: this thread's column over positions sl, sl + NSL, ... of the block, values loaded first
    if (weighs) {
      var vreg: array<vec2<u32>, MAX_W>;
      for (var u = 0u; u < VW; u++) {
        let jj = sl + u * NSL;
        if (jj < count && b0 + jj != pos) {
          vreg[u] = v_cache[(first_row + b0 + jj) * D4 + col];
        }
      }
      o *= alpha;
      for (var u = 0u; u < VW; u++) {
        let jj = sl + u * NSL;
        if (jj < count) {
          o += probs[jj] * select(kv_unpack4(vreg[u]), v_new[col], b0 + jj == pos);
        }
      }
    }
    workgroupBarrier();  // probs and red are rewritten by the next block
  }
  if (weighs) {
    slices[li] = o;
  }
  workgroupBarrier();
  for (var c = li; c < D4; c += WG) {
    var sum = vec4<f32>(0.0);
    for (var k = 0u; k < NSL; k++) {
      sum += slices[k * D4 + c];
    }
    out[h * D4 + c] = sum / l;
  }
}
