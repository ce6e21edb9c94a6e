// attention_combine.wgsl: decode attention, second half: merges the splits attention_split.wgsl wrote into each
// head's output (the online-softmax merge, exact up to rounding).
//
// For query head h, the token at position pos = positions[0], n = ceil((pos + 1) / split_positions) splits, with
// (o_c, m_c, l_c) = part_o[h, c, :], part_ml[h, c].xy:
//   M = max_c m_c;   w_c = exp(m_c - M);   out[h, :] = (sum_c w_c o_c) / (sum_c w_c l_c)
//
// Bindings, in order (element counts; d = head_dim, S = splits):
//   0 positions u32[1]                                 position of the token (< capacity)
//   1 part      vec4<f32>[num_heads * S * (d / 4 + 1)]  attention_split.wgsl's output: o [H, S, d/4], then
//                                                      (m, l, 0, 0) [H, S]
//   2 out       vec4<f32>[num_heads * d / 4]           attention output, [head, d]
//   3 params    Params
//
// Dispatch: (num_heads, 1, 1) workgroups of WG threads; thread j writes columns j, j + WG, ... (vec4s) of the head,
// each thread reading every split's (m, l) itself (S is small: capacity / split_positions).

override WG: u32 = 32u;  // threads per workgroup

struct Params {
  num_heads: u32,        // query heads
  head_dim: u32,         // elements per head, a multiple of 4
  capacity: u32,         // positions per kv head in the cache
  splits: u32,           // S: splits per head in part (attention_split.wgsl's grid height)
  split_positions: u32,  // cache positions per split (attention_split.wgsl's WG)
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x;
  let d4 = params.head_dim / 4u;
  let pos = min(positions[0], params.capacity - 1u);
  let n = pos / params.split_positions + 1u;
  let row = h * params.splits;           // (h, split 0)
  let ml = params.num_heads * params.splits * d4;  // where the (m, l) records start
  var mx = part[ml + row].x;
  for (var c = 1u; c < n; c++) {
    mx = max(mx, part[ml + row + c].x);
  }
  var l = 0.0;
  for (var c = 0u; c < n; c++) {
    let r = part[ml + row + c];
    l += exp(r.x - mx) * r.y;
  }
  let inv_l = 1.0 / l;
  for (var col = li; col < d4; col += WG) {
    var o = vec4<f32>(0.0);
    for (var c = 0u; c < n; c++) {
      o += exp(part[ml + row + c].x - mx) * part[(row + c) * d4 + col];
    }
    out[h * d4 + col] = o * inv_l;
  }
}
