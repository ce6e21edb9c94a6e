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
// Dispatch: (num_heads, CG, 1) workgroups of WG threads; workgroup (h, g) writes head h's vec4 columns g * cw ..
// (g + 1) * cw - 1, cw = ceil((d/4) / CG), so a head's splits are read by CG workgroups at once rather than walked by
// one (at KV 1,984 a 3B head has 124 splits: one workgroup of 128 threads walked 31 of them per thread, one dependent
// load after another). M and the denominator (every workgroup of the head computes them): each thread takes splits
// j, j + WG, ..., then tree reductions. The numerator: the cw columns times max(1, WG / cw) slices of the splits
// (slice k: splits k, k + slices, ...) spread over the threads, slices summed in workgroup memory. Needs
// d % 4 == 0, d <= 256, WG a power of two <= 256 (groups past the
// columns, CG > d/4, write nothing).

override WG: u32 = 128u;  // threads per workgroup
override CG: u32 = 1u;    // column groups: workgroups per head (the grid's height)

const NEG_BIG: f32 = -3.0e38;

struct Params {
  num_heads: u32,        // query heads
  head_dim: u32,         // elements per head, a multiple of 4
  capacity: u32,         // positions per kv head in the cache
  splits: u32,           // S: splits per head in part (attention_split.wgsl's grid height)
  split_positions: u32,  // cache positions per split (attention_split.wgsl's SPLIT)
}

@group(0) @binding(0) var<storage, read> positions: array<u32>;
@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> red: array<f32, WG>;
var<workgroup> slices: array<vec4<f32>, 256>;  // per (slice, column) partial numerators (<= max(WG, cw))

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let h = wid.x;
  let d4 = params.head_dim / 4u;
  let cw = (d4 + CG - 1u) / CG;                    // columns per group
  let col0 = wid.y * cw;                           // this workgroup's first column
  let ncol = min(cw, d4 - min(d4, col0));          // its columns (the last group may have fewer)
  let pos = min(positions[0], params.capacity - 1u);
  let n = pos / params.split_positions + 1u;
  let row = h * params.splits;                     // (h, split 0)
  let ml = params.num_heads * params.splits * d4;  // where the (m, l) records start

  var mx = NEG_BIG;
  for (var c = li; c < n; c += WG) {
    mx = max(mx, part[ml + row + c].x);
  }
  red[li] = mx;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      red[li] = max(red[li], red[li + stride]);
    }
    workgroupBarrier();
  }
  let m = red[0];
  workgroupBarrier();  // every thread has read red[0] before red is rewritten

  var l = 0.0;
  for (var c = li; c < n; c += WG) {
    let r = part[ml + row + c];
    l += exp(r.x - m) * r.y;
  }
  red[li] = l;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      red[li] += red[li + stride];
    }
    workgroupBarrier();
  }
  let inv_l = 1.0 / red[0];

  let nsl = max(1u, WG / cw);
  for (var idx = li; idx < cw * nsl; idx += WG) {
    let col = col0 + idx % cw;
    var o = vec4<f32>(0.0);
    if (col < d4) {
      for (var c = idx / cw; c < n; c += nsl) {
        o += exp(part[ml + row + c].x - m) * part[(row + c) * d4 + col];
      }
    }
    slices[idx] = o;
  }
  workgroupBarrier();
  for (var k0 = li; k0 < ncol; k0 += WG) {
    var o = vec4<f32>(0.0);
    for (var k = 0u; k < nsl; k++) {
      o += slices[k * cw + k0];
    }
    out[h * d4 + col0 + k0] = o * inv_l;
  }
}
