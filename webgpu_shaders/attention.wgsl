// attention.wgsl: causal grouped-query attention over the KV cache, for decode (tokens = 1) and prefill.
//
// For query token t at position pos = positions[t] and query head h, with kv head g = h / (num_heads / num_kv_heads):
//   s_p = scale * dot(q[t, h, :], k_cache[g, p, :])               for cache positions p = 0 .. pos
//   (p = pos - WINDOW + 1 .. pos with a sliding window)
//   out[t, h, :] = sum_p softmax(s)_p * v_cache[g, p, :]
// The softmax is computed online (running maximum, rescaled sums), so it is stable and needs no score buffer.
// rope_table.wgsl must have written positions 0 .. pos of this layer's cache (prefill writes all T tokens first). The
// cache holds f16 two per u32 (kv_f16.wgsl); keys and values are unpacked to f32, and everything sums in f32.
//
// Bindings, in order (element counts; d = head_dim):
//   0 positions u32[tokens]                          position of each query token (< capacity)
//   1 q         vec4<f32>[tokens * num_heads * d / 4] rotated queries, [token, head, d]
//   2 k_cache   vec2<u32>[num_kv_heads * capacity * d / 4]  [kv head, position, d], f16 pairs (a vec2 per 4 values)
//   3 v_cache   u32[num_kv_heads * capacity * d / 2]        same layout (a u32 per 2 values)
//   4 out       f32[tokens * num_heads * d]          [token, head, d]
//   5 params    Params
//
// Dispatch: (num_heads, tokens, 1) workgroups of WG threads. Per block of WG cache positions, thread j scores
// position p0 + j; the block maximum comes from a tree reduction; then thread j accumulates output dims
// j, j + WG, ... over the block's positions (coalesced reads of v). Needs d % 4 == 0, d <= 256 and d <= 8 * WG.

override WG: u32 = 64u;  // threads per workgroup and positions per block; a power of two
override WINDOW: u32 = 0u;  // sliding window (gemma3's sliding layers): keys pos - WINDOW + 1 .. pos only; 0: all

const MAX_HEAD_DIM: u32 = 256u;
const MAX_DIMS_PER_THREAD: u32 = 8u;
const NEG_BIG: f32 = -3.0e38;  // "minus infinity" that stays finite in exp(a - b)

struct Params {
  num_heads: u32,     // query heads
  num_kv_heads: u32,  // key/value heads (divides num_heads)
  head_dim: u32,      // elements per head, a multiple of 4
  capacity: u32,      // positions per kv head in the cache
  scale: f32,         // score scale, usually 1 / sqrt(head_dim)
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k_cache: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> v_cache: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> q_scaled: array<vec4<f32>, MAX_HEAD_DIM / 4u>;
var<workgroup> probs: array<f32, WG>;  // exp(s - max) of the current block
var<workgroup> red: array<f32, WG>;    // reduction scratch
var<workgroup> key_count: u32;         // keys to attend: pos + 1

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

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x;
  let t = wid.y;
  let d = params.head_dim;
  let d4 = d / 4u;
  let g = h / (params.num_heads / params.num_kv_heads);
  let first_row = g * params.capacity;  // cache row of position 0 for this kv head
  for (var i = li; i < d4; i += WG) {
    q_scaled[i] = q[(t * params.num_heads + h) * d4 + i] * params.scale;
  }
  if (li == 0u) {
    key_count = min(positions[t] + 1u, params.capacity);
  }
  let n = workgroupUniformLoad(&key_count);  // also the barrier after q_scaled

  var m = NEG_BIG;  // running maximum score
  var l = 0.0;      // this thread's share of the running softmax denominator
  var o: array<f32, MAX_DIMS_PER_THREAD>;
  var start = 0u;  // the first block holding a position the query sees (WINDOW: pos - WINDOW + 1)
  if (WINDOW != 0u && n > WINDOW) {
    start = (n - WINDOW) / WG * WG;
  }
  for (var p0 = start; p0 < n; p0 += WG) {
    let p = p0 + li;
    var s = NEG_BIG;
    let seen = p < n && (WINDOW == 0u || p + WINDOW > n - 1u);  // n - 1 = pos
    if (seen) {
      var acc = vec4<f32>(0.0);
      for (var i = 0u; i < d4; i++) {
        acc += q_scaled[i] * kv_unpack4(k_cache[(first_row + p) * d4 + i]);
      }
      s = dot(acc, vec4<f32>(1.0));
    }
    red[li] = s;
    workgroupBarrier();
    let m_new = max(m, reduce_max(li));
    let alpha = exp(m - m_new);  // rescales what was summed against the old maximum
    let e = select(0.0, exp(s - m_new), seen);
    l = l * alpha + e;
    probs[li] = e;
    workgroupBarrier();
    let block = min(WG, n - p0);
    for (var j = 0u; j < MAX_DIMS_PER_THREAD; j++) {
      let dim = li + j * WG;
      if (dim < d) {
        var od = o[j] * alpha;
        for (var jj = 0u; jj < block; jj++) {
          od += probs[jj] * unpack2x16float(v_cache[(first_row + p0 + jj) * (d / 2u) + dim / 2u])[dim % 2u];
        }
        o[j] = od;
      }
    }
    m = m_new;
    workgroupBarrier();  // probs and red are rewritten by the next block
  }
  red[li] = l;
  workgroupBarrier();
  let inv_l = 1.0 / reduce_sum(li);
  for (var j = 0u; j < MAX_DIMS_PER_THREAD; j++) {
    let dim = li + j * WG;
    if (dim < d) {
      out[(t * params.num_heads + h) * d + dim] = o[j] * inv_l;
    }
  }
}
