// attention_prefill_combine.wgsl: prefill attention, second half when a pass's cache positions were split over
// workgroups: merges the parts attention_prefill.wgsl wrote into each (token, head)'s output (the online-softmax
// merge, exact up to rounding; attention_combine.wgsl does the same for decode).
//
// For query token t and head h of a pass of ns = min(splits, ceil(end / split_positions)) splits (end =
// positions[tokens - 1] + 1, as attention_prefill.wgsl counts them), with (o_z, m_z, l_z) = part[t, h, z] and only
// the parts with l_z > 0 (a split that holds none of the query's positions has l = 0: weight 0):
//   M = max_z m_z;   w_z = exp(m_z - M);   out[t, h, :] = (sum_z w_z o_z) / (sum_z w_z l_z)
// With ns == 1 attention_prefill.wgsl wrote out itself and this kernel writes nothing (the engine then does not
// dispatch it).
//
// Bindings, in order (element counts; d = head_dim):
//   0 positions u32[tokens]                                   position of each query token (rising)
//   1 part      vec4<f32>[tokens * num_heads * splits * (d / 4 + 1)]  attention_prefill.wgsl's parts:
//                                                             [token, head, split, (o [d / 4], (m, l, 0, 0))]
//   2 out       vec4<f32>[tokens * num_heads * d / 4]         attention output, [token, head, d]
//   3 params    Params
//
// Dispatch: ceil(tokens * num_heads * d / 4 / WG) workgroups of WG threads, folded into y past 65535 (grids.js
// grid1d); one thread per output vec4. The d / 4 threads of one (t, h) read the same ns (m, l) records (cached).
// Needs d % 4 == 0.

override WG: u32 = 64u;  // threads per workgroup

const NEG_BIG: f32 = -3.0e38;

struct Params {
  num_heads: u32,        // query heads
  head_dim: u32,         // elements per head, a multiple of 4
  tokens: u32,           // query tokens of the pass
  splits: u32,           // splits at most (part's third dimension; attention_prefill.wgsl's Params.splits)
  split_positions: u32,  // attention_prefill.wgsl's SPLIT: cache positions per split, at least
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let d4 = params.head_dim / 4u;
  let idx = (wid.x + wid.y * nwg.x) * WG + li;
  if (idx >= params.tokens * params.num_heads * d4) {
    return;
  }
  let end = positions[params.tokens - 1u] + 1u;
  let ns = min(params.splits, (end + params.split_positions - 1u) / params.split_positions);
  if (ns <= 1u) {
    return;  // attention_prefill.wgsl wrote out itself
  }
  let row = idx / d4;  // t * num_heads + h
  let col = idx % d4;
  let first = row * params.splits;  // record of (t, h, split 0)
  var m = NEG_BIG;
  for (var z = 0u; z < ns; z++) {
    let ml = part[(first + z) * (d4 + 1u) + d4];
    if (ml.y > 0.0) {
      m = max(m, ml.x);
    }
  }
  var l = 0.0;
  var o = vec4<f32>(0.0);
  for (var z = 0u; z < ns; z++) {
    let ml = part[(first + z) * (d4 + 1u) + d4];
    if (ml.y > 0.0) {
      let w = exp(ml.x - m);
      l += w * ml.y;
      o += w * part[(first + z) * (d4 + 1u) + col];
    }
  }
  out[idx] = o / l;
}
