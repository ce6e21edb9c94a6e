// bias.wgsl: add a bias vector to every token's row (qwen2's q/k/v projection biases), in place.
//
//   y[t, i] = y[t, i] + b[i]      t < tokens, i < n
// The projections (matvec.wgsl, matmul.wgsl) have no bias term; this broadcast add runs after them (over every token
// of a prefill pass; decode adds the biases inside attention_split.wgsl).
//
// Bindings, in order (element counts):
//   0 b       f32[n]            the bias
//   1 y       f32[tokens * n]   row-major [tokens, n], updated in place
//   2 params  Params
//
// Dispatch: ceil(tokens * n / WG) workgroups of WG threads, folded as (min(groups, 65535), ceil(groups / 65535)).

override WG: u32 = 256u;  // threads per workgroup

struct Params {
  n: u32,       // elements per row (the bias length)
  tokens: u32,  // rows of y
}

@group(0) @binding(0) var<storage, read> b: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i < params.n * params.tokens) {
    y[i] += b[i % params.n];
  }
}
