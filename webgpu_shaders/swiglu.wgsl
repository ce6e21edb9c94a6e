// swiglu.wgsl: the SwiGLU gate of the feed-forward block (prefill; decode fuses it into matvec.wgsl main_swiglu).
//
//   y[i] = silu(gate[i]) * up[i],  silu(g) = g / (1 + exp(-g))      i < n  (n = T * intermediate)
//   (gelu_tanh(gate[i]) * up[i] with GELU: gemma3's GeGLU)
//
// Bindings, in order (element counts):
//   0 gate    f32[n]
//   1 up      f32[n]
//   2 y       f32[n]
//   3 params  Params
//
// Dispatch: ceil(n / WG) workgroups of WG threads, folded as (min(groups, 65535), ceil(groups / 65535)).

override WG: u32 = 256u;  // threads per workgroup
override GELU: bool = false;  // gate activation gelu_tanh (gemma3's GeGLU) instead of silu

struct Params {
  n: u32,  // elements
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// The MLP's gate activation: silu(g) = g / (1 + exp(-g)), or with GELU gelu_tanh(g) = 0.5 g (1 + tanh(sqrt(2/pi)
// (g + 0.044715 g^3))) (PyTorch's gelu(approximate="tanh"): gemma3). tanh's argument is clamped to +-10, where it is
// 1 in f32 already, so no backend's tanh overflows.
fn act(g: f32) -> f32 {
  if (GELU) {
    let inner = clamp(0.7978845608028654 * (g + 0.044715 * g * g * g), -10.0, 10.0);
    return 0.5 * g * (1.0 + tanh(inner));
  }
  return g / (1.0 + exp(-g));
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i < params.n) {
    y[i] = act(gate[i]) * up[i];
  }
}
