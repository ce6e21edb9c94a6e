// add.wgsl: residual add in place (standalone; matvec.wgsl and matmul.wgsl fuse it into their epilogue).
//
//   y[i] = y[i] + x[i]      i < n
//
// Bindings, in order (element counts):
//   0 x       f32[n]   the branch output
//   1 y       f32[n]   the residual stream, updated in place
//   2 params  Params
//
// Dispatch: ceil(n / WG) workgroups of WG threads, folded as (min(groups, 65535), ceil(groups / 65535)).

override WG: u32 = 256u;  // threads per workgroup

struct Params {
  n: u32,  // elements
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i < params.n) {
    y[i] += x[i];
  }
}
