// rope_table.wgsl: rope.wgsl with the rotation read from a host-computed table instead of sin / cos in the shader.
//
// WGSL only promises sin and cos to 2^-11 absolute error on [-pi, pi]; SwiftShader (the browser tests' adapter) is
// off by about 2e-4, which moves a tiny model's logits by ~1e-3 from the numpy reference. The engine fills the table
// once at load the way model_prep/engine.py RunState does (angles in float64, cos / sin rounded to f32), so the
// rotation uses exactly the reference's cos and sin; the shader then does no transcendental math at all.
//
// For token t at position pos = positions[t], head h, pair index i < head_dim / 2, (c, s) = cs[pos, i]:
//   (a, b) = (2i, 2i + 1) when HALF is false (GGUF llama "interleaved"), (i, i + d/2) when true (HF "half")
//   q[t, h, a], q[t, h, b]                 <- rotated in place                       for h < num_heads
//   k_cache[h, pos, a], k_cache[h, pos, b] <- k[t, h, a], k[t, h, b] rotated           for h < num_kv_heads
//   v_cache[h, pos, a], v_cache[h, pos, b] <- v[t, h, a], v[t, h, b] (copied)         for h < num_kv_heads
//
// Bindings, in order (element counts; d = head_dim):
//   0 positions u32[tokens]                          position of each token (< capacity)
//   1 cs        vec2<f32>[capacity * d / 2]          (cos, sin) of pos * theta^(-2i/d), [position, pair]
//   2 k         f32[tokens * num_kv_heads * d]       new keys, unrotated
//   3 v         f32[tokens * num_kv_heads * d]       new values
//   4 q         f32[tokens * num_heads * d]          queries, rotated in place
//   5 k_cache   f32[num_kv_heads * capacity * d]     this layer's keys, [kv head, position, d]
//   6 v_cache   f32[num_kv_heads * capacity * d]     this layer's values, same layout
//   7 params    Params
//
// Dispatch: ceil(tokens * num_heads * d / 2 / WG) workgroups of WG threads, folded as (min(groups, 65535),
// ceil(groups / 65535)); one thread per (token, head, pair).

override WG: u32 = 64u;       // threads per workgroup
override HALF: bool = false;  // pair layout: false = interleaved (2i, 2i+1), true = half (i, i + d/2)

struct Params {
  tokens: u32,        // tokens (entries of positions)
  num_heads: u32,     // query heads
  num_kv_heads: u32,  // key/value heads (divides num_heads)
  head_dim: u32,      // elements per head, even
  capacity: u32,      // positions per kv head in the cache, and rows of cs
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> cs: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(6) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let pairs = params.head_dim / 2u;
  let idx = (wid.x + wid.y * nwg.x) * WG + li;
  if (idx >= params.tokens * params.num_heads * pairs) {
    return;
  }
  let t = idx / (params.num_heads * pairs);
  let h = (idx / pairs) % params.num_heads;
  let i = idx % pairs;
  var a = 2u * i;
  var b = 2u * i + 1u;
  if (HALF) {
    a = i;
    b = i + pairs;
  }
  let pos = positions[t];
  if (pos >= params.capacity) {
    return;  // no table row (the engine never asks for one)
  }
  let r = cs[pos * pairs + i];  // (cos, sin)

  let qa = (t * params.num_heads + h) * params.head_dim;
  let q0 = q[qa + a];
  let q1 = q[qa + b];
  q[qa + a] = q0 * r.x - q1 * r.y;
  q[qa + b] = q1 * r.x + q0 * r.y;

  if (h < params.num_kv_heads) {
    let src = (t * params.num_kv_heads + h) * params.head_dim;
    let dst = (h * params.capacity + pos) * params.head_dim;
    let k0 = k[src + a];
    let k1 = k[src + b];
    k_cache[dst + a] = k0 * r.x - k1 * r.y;
    k_cache[dst + b] = k1 * r.x + k0 * r.y;
    v_cache[dst + a] = v[src + a];
    v_cache[dst + b] = v[src + b];
  }
}
