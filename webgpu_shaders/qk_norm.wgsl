// qk_norm.wgsl: Qwen3's per-head RMSNorm of q and k (config.qk_norm), in place, after the projections and before
// RoPE. A row of x holds `heads` heads of head_dim values; the first q_heads are query heads (weight wq), the rest key
// heads (weight wk):
//
//   x[t, h, i] = x[t, h, i] / sqrt(mean_j(x[t, h, j]^2) + eps) * w[i],   w = wq if h < q_heads else wk
//
// the arithmetic of rmsnorm.wgsl over head_dim values. ops.js runs it on decode's s.qkv (one row: H query heads, then
// KV key heads, then the values, which it leaves alone), on a prefill pass's stacked q/k/v rows before qkv_split.wgsl,
// or on s.q and s.k separately (heads = q_heads = H; heads = KV, q_heads = 0).
//
// Bindings, in order (element counts; d = head_dim):
//   0 wq      f32[d]                  query heads' norm weight (blk.N.attn_q_norm.weight)
//   1 wk      f32[d]                  key heads' norm weight (blk.N.attn_k_norm.weight)
//   2 x       f32[tokens * stride]    rows of `stride` values; head h of row t at t * stride + h * d, normed in place
//   3 params  Params
//
// Dispatch: (heads, tokens, 1) workgroups of WG threads, one per (head, token): strided sum of squares, tree
// reduction in workgroup memory, then a strided scale.

override WG: u32 = 64u;  // threads per workgroup (head); a power of two

struct Params {
  heads: u32,     // heads per row to norm (the grid's x)
  q_heads: u32,   // the first q_heads of them use wq, the others wk
  head_dim: u32,  // values per head
  stride: u32,    // values per row of x (>= heads * head_dim)
  tokens: u32,    // rows (the grid's y)
  eps: f32,       // added to mean(x^2)
}

@group(0) @binding(0) var<storage, read> wq: array<f32>;
@group(0) @binding(1) var<storage, read> wk: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> sums: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x;
  let d = params.head_dim;
  let base = wid.y * params.stride + h * d;
  var s = 0.0;
  for (var i = li; i < d; i += WG) {
    let v = x[base + i];
    s += v * v;
  }
  sums[li] = s;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      sums[li] += sums[li + stride];
    }
    workgroupBarrier();
  }
  let inv_rms = inverseSqrt(sums[0] / f32(d) + params.eps);
  let is_q = h < params.q_heads;
  for (var i = li; i < d; i += WG) {
    let w = select(wk[i], wq[i], is_q);
    x[base + i] = x[base + i] * inv_rms * w;
  }
}
