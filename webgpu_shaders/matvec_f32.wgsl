// matvec_f32.wgsl: decode matrix-vector products over one row chunk of an f32 weight (matvec.wgsl's twin for
// storage f32: tiny test models, `fieldllm prepare --weights f32`, and tensors whose rows do not split into groups).
//
// For r in 0..rows-1 (the chunk's rows) and W the chunk (rows x cols, plane "data"):
//   main         y[row_offset + r] = dot(W[r, :], x)                   (y += ... when ACCUMULATE: residual add)
//   main_norm    y[row_offset + r] = dot(W[r, :], rmsnorm(x) * norm_w)  (RMSNorm folded in: no normed copy of x)
//   main_swiglu  y[row_offset + r] = silu(dot(Wg[r, :], x')) * dot(Wu[r, :], x'),  x' = rmsnorm(x) * norm_w
//                (gelu_tanh instead of silu with GELU: gemma3's GeGLU)
// Same entry points, Params and meaning as matvec.wgsl; each weight has one plane instead of qweight + scales, so
// every binding after the weight moves down by one.
//
// Bindings, in order (element counts):
//   main:        0 w       f32[rows * cols]        plane "data" of the chunk
//                1 x       f32[cols]               input vector
//                2 y       f32[>= row_offset + rows]  output (read when ACCUMULATE)
//                3 params  Params
//   main_norm:   0 w, 1 x, 2 norm_w f32[cols] (RMSNorm weight), 3 y, 4 params
//   main_swiglu: 0 w (gate), 1 x, 2 norm_w, 3 up_w f32[rows * cols] (up), 4 y, 5 params
//
// Dispatch: groups = ceil(rows / R) workgroups of WG threads, folded as (min(groups, 65535), ceil(groups / 65535)).
// The workgroup owns R consecutive rows; thread li walks columns li, li + WG, ... (coalesced across threads) and
// reuses each x element for the R rows. Partial sums meet in workgroup memory. Any cols >= 1, rows >= 1.

override WG: u32 = 64u;             // threads per workgroup
override R: u32 = 4u;               // rows per workgroup, 1..MAX_R
override ACCUMULATE: bool = false;  // main: y[i] += W x instead of y[i] = W x
override GELU: bool = false;        // main_swiglu: gate activation gelu_tanh (gemma3's GeGLU), not silu

const MAX_R: u32 = 8u;
override LANES: u32 = 2u * R + 1u;  // partial-sum lanes: gate/plain rows, up rows, then sum(x^2)
override SUMSQ_LANE: u32 = 2u * R;

struct Params {
  rows: u32,        // rows of this chunk (outputs written), >= 1
  cols: u32,        // input features: elements of x
  row_offset: u32,  // element index in y of the chunk's first row
  eps: f32,         // RMSNorm epsilon added to mean(x^2) (main_norm, main_swiglu; unused by main)
}

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
// main
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
// main_norm and main_swiglu
@group(0) @binding(2) var<storage, read> norm_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y_norm: array<f32>;
@group(0) @binding(4) var<uniform> params_norm: Params;
@group(0) @binding(3) var<storage, read> up_w: array<f32>;
@group(0) @binding(4) var<storage, read_write> y_swiglu: array<f32>;
@group(0) @binding(5) var<uniform> params_swiglu: Params;

var<workgroup> partials: array<f32, LANES * WG>;  // [lane, thread]

fn block_row0(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return (wid.x + wid.y * nwg.x) * R;
}

fn lane_total(lane: u32) -> f32 {
  var s = 0.0;
  for (var k = 0u; k < WG; k++) {
    s += partials[lane * WG + k];
  }
  return s;
}

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
  let row0 = block_row0(wid, nwg);
  let cols = params.cols;
  var acc: array<f32, MAX_R>;
  for (var c = li; c < cols; c += WG) {
    let xc = x[c];
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + i, params.rows - 1u);  // past the end: recompute the last row, store nothing
      acc[i] += w[r * cols + c] * xc;
    }
  }
  for (var i = 0u; i < R; i++) {
    partials[i * WG + li] = acc[i];
  }
  workgroupBarrier();
  let r = row0 + li;
  if (li < R && r < params.rows) {
    let o = params.row_offset + r;
    var v = lane_total(li);
    if (ACCUMULATE) {
      v += y[o];
    }
    y[o] = v;
  }
}

@compute @workgroup_size(WG)
fn main_norm(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let row0 = block_row0(wid, nwg);
  let cols = params_norm.cols;
  var acc: array<f32, MAX_R>;
  var sumsq = 0.0;
  for (var c = li; c < cols; c += WG) {
    let xv = x[c];
    sumsq += xv * xv;
    let xc = xv * norm_w[c];
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + i, params_norm.rows - 1u);
      acc[i] += w[r * cols + c] * xc;
    }
  }
  for (var i = 0u; i < R; i++) {
    partials[i * WG + li] = acc[i];
  }
  partials[SUMSQ_LANE * WG + li] = sumsq;
  workgroupBarrier();
  let r = row0 + li;
  if (li < R && r < params_norm.rows) {
    let inv_rms = inverseSqrt(lane_total(SUMSQ_LANE) / f32(cols) + params_norm.eps);
    y_norm[params_norm.row_offset + r] = lane_total(li) * inv_rms;
  }
}

@compute @workgroup_size(WG)
fn main_swiglu(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let row0 = block_row0(wid, nwg);
  let cols = params_swiglu.cols;
  var gate: array<f32, MAX_R>;
  var up: array<f32, MAX_R>;
  var sumsq = 0.0;
  for (var c = li; c < cols; c += WG) {
    let xv = x[c];
    sumsq += xv * xv;
    let xc = xv * norm_w[c];
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + i, params_swiglu.rows - 1u);
      gate[i] += w[r * cols + c] * xc;
      up[i] += up_w[r * cols + c] * xc;
    }
  }
  for (var i = 0u; i < R; i++) {
    partials[i * WG + li] = gate[i];
    partials[(R + i) * WG + li] = up[i];
  }
  partials[SUMSQ_LANE * WG + li] = sumsq;
  workgroupBarrier();
  let r = row0 + li;
  if (li < R && r < params_swiglu.rows) {
    let inv_rms = inverseSqrt(lane_total(SUMSQ_LANE) / f32(cols) + params_swiglu.eps);
    let g = lane_total(li) * inv_rms;
    let v = lane_total(R + li) * inv_rms;
    y_swiglu[params_swiglu.row_offset + r] = act(g) * v;
  }
}
