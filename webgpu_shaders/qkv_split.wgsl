// qkv_split.wgsl: a prefill pass's stacked q/k/v rows (one matmul.wgsl over the stacked weights, ops.js
// projectQKV) split into q, k and v, each with its bias added (qwen2; the bias buffer holds zeros otherwise).
//
//   q[t, i] = qkv[t, i] + bias[i]                                  i < q_width  (H * D)
//   k[t, i] = qkv[t, q_width + i] + bias[q_width + i]              i < kv_width (KV * D)
//   v[t, i] = qkv[t, q_width + kv_width + i] + bias[q_width + kv_width + i]
// One f32 addition per element, as bias.wgsl's (adding a zero bias leaves the value unchanged).
//
// Bindings, in order (element counts; width = q_width + 2 * kv_width):
//   0 qkv     f32[tokens * width]     row-major [tokens, width]: q, k, v of each token side by side
//   1 bias    f32[width]              q, k, v biases side by side (the run state's qkvBias of the layer)
//   2 q       f32[tokens * q_width]   [tokens, H, D]
//   3 k       f32[tokens * kv_width]  [tokens, KV, D]
//   4 v       f32[tokens * kv_width]  [tokens, KV, D]
//   5 params  Params
//
// Dispatch: ceil(tokens * width / WG) workgroups of WG threads, folded as (min(groups, 65535), ceil(groups / 65535)).

override WG: u32 = 256u;  // threads per workgroup

struct Params {
  q_width: u32,   // elements of q per token (num_heads * head_dim)
  kv_width: u32,  // elements of k (and of v) per token (num_kv_heads * head_dim)
  tokens: u32,    // rows of qkv
}

@group(0) @binding(0) var<storage, read> qkv: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> q: array<f32>;
@group(0) @binding(3) var<storage, read_write> k: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let width = params.q_width + 2u * params.kv_width;
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= width * params.tokens) {
    return;
  }
  let t = i / width;
  let c = i % width;
  let value = qkv[i] + bias[c];
  if (c < params.q_width) {
    q[t * params.q_width + c] = value;
  } else if (c < params.q_width + params.kv_width) {
    k[t * params.kv_width + c - params.q_width] = value;
  } else {
    v[t * params.kv_width + c - params.q_width - params.kv_width] = value;
  }
}
