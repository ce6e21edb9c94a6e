// swiglu.wgsl: the SwiGLU gate of the feed-forward block (prefill; decode fuses it into matvec.wgsl main_swiglu).
//
//   y[i] = silu(gate[i]) * up[i],  silu(g) = g / (1 + exp(-g))      i < n  (n = T * intermediate)
//
// Bindings, in order (element counts):
//   0 gate    f32[n]
//   1 up      f32[n]
//   2 y       f32[n]
//   3 params  Params
//
// Dispatch: ceil(n / WG) workgroups of WG threads, folded as (min(groups, 65535), ceil(groups / 65535)).

override WG: u32 = 256u;  // threads per workgroup

struct Params {
  n: u32,  // elements
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i < params.n) {
    let g = gate[i];
    y[i] = g / (1.0 + exp(-g)) * up[i];
  }
}
