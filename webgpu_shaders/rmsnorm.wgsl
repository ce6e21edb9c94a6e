// rmsnorm.wgsl: RMSNorm of T rows (prefill; decode folds the norm into matvec.wgsl's main_norm / main_swiglu).
//
//   y[t, i] = x[t, i] / sqrt(mean_j(x[t, j]^2) + eps) * w[i]      t < T, i < n
//   (y[t, i] += ... when ACCUMULATE: gemma3's post-attention / post-MLP norms added into the residual stream, in
//   decode and prefill alike)
//
// Bindings, in order (element counts):
//   0 x       f32[T * n]   input rows
//   1 w       f32[n]       norm weight
//   2 y       f32[T * n]   output rows (a different buffer from x)
//   3 params  Params
//
// Dispatch: (T, 1, 1) workgroups of WG threads, one per row: strided sum of squares, tree reduction in workgroup
// memory, then a strided scale.

override WG: u32 = 256u;  // threads per workgroup (row); a power of two
override ACCUMULATE: bool = false;  // y += rmsnorm(x) * w instead of y = rmsnorm(x) * w

struct Params {
  n: u32,    // elements per row
  eps: f32,  // added to mean(x^2)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> sums: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let base = wid.x * params.n;
  var s = 0.0;
  for (var i = li; i < params.n; i += WG) {
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
  let inv_rms = inverseSqrt(sums[0] / f32(params.n) + params.eps);
  for (var i = li; i < params.n; i += WG) {
    let v = x[base + i] * inv_rms * w[i];
    if (ACCUMULATE) {
      y[base + i] += v;
    } else {
      y[base + i] = v;
    }
  }
}
