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
//   k_cache[h, pos, a], k_cache[h, pos, b] <- k[t, h, a], k[t, h, b] rotated, as f16   for h < num_kv_heads
//   v_cache[h, pos, a], v_cache[h, pos, b] <- v[t, h, a], v[t, h, b], as f16          for h < num_kv_heads
// The caches hold f16 two per u32 (kv_f16.wgsl: its rounding, bit for bit the reference's forward.py kv_f16).
//
// Bindings, in order (element counts; d = head_dim):
//   0 positions u32[tokens]                          position of each token (< capacity)
//   1 cs        vec2<f32>[capacity * d / 2]          (cos, sin) of pos * theta^(-2i/d), [position, pair]
//   2 k         f32[tokens * num_kv_heads * d]       new keys, unrotated
//   3 v         f32[tokens * num_kv_heads * d]       new values
//   4 q         f32[tokens * num_heads * d]          queries, rotated in place
//   5 k_cache   u32[num_kv_heads * capacity * d / 2] this layer's keys, [kv head, position, d] as f16 pairs
//   6 v_cache   u32[num_kv_heads * capacity * d / 2] this layer's values, same layout
//   7 params    Params
//
// Dispatch: ceil(tokens * num_heads * d / 4 / WG) workgroups of WG threads, folded as (min(groups, 65535),
// ceil(groups / 65535)); one thread per (token, head, two pairs 2w and 2w + 1): their four elements fill two whole
// cache words (interleaved: words 2w, 2w + 1; half: words w, w + d/4), so no two threads write halves of one word.
// Needs d % 4 == 0.

override WG: u32 = 64u;       // threads per workgroup
override HALF: bool = false;  // pair layout: false = interleaved (2i, 2i+1), true = half (i, i + d/2)

struct Params {
  tokens: u32,        // tokens (entries of positions)
  num_heads: u32,     // query heads
  num_kv_heads: u32,  // key/value heads (divides num_heads)
  head_dim: u32,      // elements per head, a multiple of 4
  capacity: u32,      // positions per kv head in the cache, and rows of cs
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> cs: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> q: array<f32>;
@group(0) @binding(5) var<storage, read_write> k_cache: array<u32>;
@group(0) @binding(6) var<storage, read_write> v_cache: array<u32>;
@group(0) @binding(7) var<uniform> params: Params;

// Elements (a, b) of pair i: (2i, 2i + 1) interleaved, (i, i + d/2) half.
fn pair_of(i: u32, d: u32) -> vec2<u32> {
  if (HALF) {
    return vec2<u32>(i, i + d / 2u);
  }
  return vec2<u32>(2u * i, 2u * i + 1u);
}

// (x[a], x[b]) rotated by r = (cos, sin).
fn rotate(x0: f32, x1: f32, r: vec2<f32>) -> vec2<f32> {
  return vec2<f32>(x0 * r.x - x1 * r.y, x1 * r.x + x0 * r.y);
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let d = params.head_dim;
  let pairs = d / 2u;
  let quads = d / 4u;
  let idx = (wid.x + wid.y * nwg.x) * WG + li;
  if (idx >= params.tokens * params.num_heads * quads) {
    return;
  }
  let t = idx / (params.num_heads * quads);
  let h = (idx / quads) % params.num_heads;
  let w = idx % quads;
  let pos = positions[t];
  if (pos >= params.capacity) {
    return;  // no table row (the engine never asks for one)
  }
  let i0 = 2u * w;  // this thread's pairs: i0 and i0 + 1
  let e0 = pair_of(i0, d);
  let e1 = pair_of(i0 + 1u, d);
  let r0 = cs[pos * pairs + i0];  // (cos, sin)
  let r1 = cs[pos * pairs + i0 + 1u];

  let qa = (t * params.num_heads + h) * d;
  let q0 = rotate(q[qa + e0.x], q[qa + e0.y], r0);
  let q1 = rotate(q[qa + e1.x], q[qa + e1.y], r1);
  q[qa + e0.x] = q0.x;
  q[qa + e0.y] = q0.y;
  q[qa + e1.x] = q1.x;
  q[qa + e1.y] = q1.y;

  if (h < params.num_kv_heads) {
    let src = (t * params.num_kv_heads + h) * d;
    let dst = (h * params.capacity + pos) * pairs;  // the row's first word
    let k0 = rotate(k[src + e0.x], k[src + e0.y], r0);
    let k1 = rotate(k[src + e1.x], k[src + e1.y], r1);
    let v0 = vec2<f32>(v[src + e0.x], v[src + e0.y]);
    let v1 = vec2<f32>(v[src + e1.x], v[src + e1.y]);
    if (HALF) {  // elements e0.x, e1.x = 2w, 2w + 1 (word w); e0.y, e1.y = d/2 + 2w, d/2 + 2w + 1 (word w + d/4)
      k_cache[dst + e0.x / 2u] = kv_pack(k0.x, k1.x);
      k_cache[dst + e0.y / 2u] = kv_pack(k0.y, k1.y);
      v_cache[dst + e0.x / 2u] = kv_pack(v0.x, v1.x);
      v_cache[dst + e0.y / 2u] = kv_pack(v0.y, v1.y);
    } else {  // elements 4w, 4w + 1 (word 2w); 4w + 2, 4w + 3 (word 2w + 1)
      k_cache[dst + e0.x / 2u] = kv_pack(k0.x, k0.y);
      k_cache[dst + e1.x / 2u] = kv_pack(k1.x, k1.y);
      v_cache[dst + e0.x / 2u] = kv_pack(v0.x, v0.y);
      v_cache[dst + e1.x / 2u] = kv_pack(v1.x, v1.y);
    }
  }
}
