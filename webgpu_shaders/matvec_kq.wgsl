// matvec_kq.wgsl: decode matrix-vector products over one row chunk of a K-quant weight (q4k, q5k, q6k: llama.cpp's
// Q4_K, Q5_K, Q6_K carried exactly, docs/FORMAT.md), unpacked in registers. The entry points are matvec.wgsl's:
//   main         y[row_offset + r] = dot(W[r, :], x)                   (y += ... when ACCUMULATE: residual add)
//   main_norm    y[row_offset + r] = dot(W[r, :], rmsnorm(x) * norm_w)  (RMSNorm folded in)
//   main_swiglu  y[row_offset + r] = silu(dot(Wg[r, :], x')) * dot(Wu[r, :], x'),  x' = rmsnorm(x) * norm_w
//                (q4k gate and up only: with qhigh planes the entry point would bind 9 storage buffers, over
//                WebGPU's default 8 per stage; the engine runs other storages unfused)
//                (gelu_tanh instead of silu with GELU: gemma3's GeGLU)
// The engine picks the pipeline by the tensor's storage through KTYPE (4: q4k, 5: q5k, 6: q6k). KTYPE and the
// decode (Codes, k_codes, k_affine, k_header, qhigh_index) are kquant.wgsl's, which the loader joins to this file
// (kernels.json: "include"); it gives each weight's value. A qweight word (8 columns) lies in one sub-block, so its
// dot product is scale * dot(codes, x) - offset * sum(x).
//
// Bindings, in order (a "word" is one u32 of qweight = 8 weights):
//   main:        0 qweight u32[rows * cols / 8]           plane "qweight" of the chunk (low 4 bits, natural order)
//                1 qhigh   u32[...]                       plane "qhigh" (q5k: rows * cols / 32, q6k: rows * cols / 16);
//                                                         q4k has none: bind any buffer (qweight), it is not read
//                2 supers  u32[rows * cols / 256 * 5]     plane "super": 5 words per super-block
//                3 x       vec4<f32>[cols / 4]            input vector
//                4 y       f32[>= row_offset + rows]      output (read when ACCUMULATE)
//                5 params  Params
//   main_norm:   0 qweight, 1 qhigh, 2 supers, 3 x, 4 norm_w f32[cols], 5 y, 6 params
//   main_swiglu: 0 qweight, 2 supers (gate), 3 x, 4 norm_w, 5 up_qweight, 7 up_supers (up), 8 y, 9 params
//                (bindings 1 and 6 unused)
//
// Dispatch as matvec.wgsl: groups = ceil(rows / (TY * R)) workgroups of TX x TY threads, folded as
// (min(groups, 65535), ceil(groups / 65535)). Thread (tx, ty) owns rows ty*R .. ty*R+R-1 of its workgroup's block
// and walks words tx, tx+TX, ... of each row. Needs cols % 256 == 0 and rows >= 1.

override TX: u32 = 32u;             // threads along a row
override TY: u32 = 4u;              // row groups per workgroup
override R: u32 = 2u;               // rows per thread, 1..MAX_R, and R <= TX
override ACCUMULATE: bool = false;  // main: y[i] += W x instead of y[i] = W x
override GELU: bool = false;        // main_swiglu: gate activation gelu_tanh (gemma3's GeGLU), not silu

override LANES: u32 = 2u * TY * R + 1u;   // partial-sum lanes: gate/plain rows, up rows, then sum(x^2)
override SUMSQ_LANE: u32 = 2u * TY * R;
const MAX_R: u32 = 8u;

struct Params {
  rows: u32,        // rows of this chunk (outputs written), >= 1
  cols: u32,        // input features: elements of x, a multiple of 256
  row_offset: u32,  // element index in y of the chunk's first row
  eps: f32,         // RMSNorm epsilon added to mean(x^2) (main_norm, main_swiglu; unused by main)
}

@group(0) @binding(0) var<storage, read> qweight: array<u32>;
@group(0) @binding(1) var<storage, read> qhigh: array<u32>;
@group(0) @binding(2) var<storage, read> supers: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
// main
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;
// main_norm and main_swiglu
@group(0) @binding(4) var<storage, read> norm_w: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> y_norm: array<f32>;
@group(0) @binding(6) var<uniform> params_norm: Params;
@group(0) @binding(5) var<storage, read> up_qweight: array<u32>;
@group(0) @binding(7) var<storage, read> up_supers: array<u32>;
@group(0) @binding(8) var<storage, read_write> y_swiglu: array<f32>;
@group(0) @binding(9) var<uniform> params_swiglu: Params;

var<workgroup> partials: array<f32, LANES * (TX + 1u)>;

// The x values of one word: a holds elements 0..3, b elements 4..7; their sum and sum of squares (before the RMSNorm
// weight).
struct XWord {
  a: vec4<f32>,
  b: vec4<f32>,
  sum: f32,
  sumsq: f32,
}

fn dot_codes(c: Codes, xw: XWord) -> f32 {
  return dot(c.a, xw.a) + dot(c.b, xw.b);
}

// dot(weights of word gw of the bound weight, x).
fn w_dot(gw: u32, xw: XWord) -> f32 {
  var qh = 0u;
  if (KTYPE != 4u) {
    qh = qhigh[qhigh_index(gw)];
  }
  let h = k_header(gw);
  let sm = k_affine(supers[h.x], supers[h.y], supers[h.z], gw);
  return sm.x * dot_codes(k_codes(qweight[gw], qh, gw), xw) - sm.y * xw.sum;
}

// main_swiglu (q4k): the gate's word gw (qhigh never read) and the up weight's.
fn gate_dot(gw: u32, xw: XWord) -> f32 {
  let h = k_header(gw);
  let sm = k_affine(supers[h.x], supers[h.y], supers[h.z], gw);
  return sm.x * dot_codes(k_codes(qweight[gw], 0u, gw), xw) - sm.y * xw.sum;
}

fn up_dot(gw: u32, xw: XWord) -> f32 {
  let h = k_header(gw);
  let sm = k_affine(up_supers[h.x], up_supers[h.y], up_supers[h.z], gw);
  return sm.x * dot_codes(k_codes(up_qweight[gw], 0u, gw), xw) - sm.y * xw.sum;
}

fn x_word(j: u32) -> XWord {
  var r: XWord;
  r.a = x[2u * j];
  r.b = x[2u * j + 1u];
  r.sum = dot(r.a + r.b, vec4<f32>(1.0));
  return r;
}

// As x_word, of rmsnorm's numerator x * norm_w (the 1 / rms factor is applied to the row's total), with sum(x^2).
fn x_word_normed(j: u32) -> XWord {
  let a = x[2u * j];
  let b = x[2u * j + 1u];
  var r: XWord;
  r.a = a * norm_w[2u * j];
  r.b = b * norm_w[2u * j + 1u];
  r.sum = dot(r.a + r.b, vec4<f32>(1.0));
  r.sumsq = dot(a, a) + dot(b, b);
  return r;
}

fn lane_total(lane: u32) -> f32 {
  var s = 0.0;
  for (var k = 0u; k < TX; k++) {
    s += partials[lane * (TX + 1u) + k];
  }
  return s;
}

fn block_row0(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return (wid.x + wid.y * nwg.x) * TY * R;
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

@compute @workgroup_size(TX, TY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row0 = block_row0(wid, nwg);
  let words = params.cols / 8u;
  var acc: array<f32, MAX_R>;
  for (var j = lid.x; j < words; j += TX) {
    let xw = x_word(j);
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + lid.y * R + i, params.rows - 1u);  // past the end: recompute the last row, store nothing
      acc[i] += w_dot(r * words + j, xw);
    }
  }
  for (var i = 0u; i < R; i++) {
    partials[(lid.y * R + i) * (TX + 1u) + lid.x] = acc[i];
  }
  workgroupBarrier();
  let r = row0 + li;
  if (li < TY * R && r < params.rows) {
    let o = params.row_offset + r;
    var v = lane_total(li);
    if (ACCUMULATE) {
      v += y[o];
    }
    y[o] = v;
  }
}

@compute @workgroup_size(TX, TY)
fn main_norm(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
             @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row0 = block_row0(wid, nwg);
  let words = params_norm.cols / 8u;
  var acc: array<f32, MAX_R>;
  var sumsq = 0.0;
  for (var j = lid.x; j < words; j += TX) {
    let xw = x_word_normed(j);
    sumsq += xw.sumsq;
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + lid.y * R + i, params_norm.rows - 1u);
      acc[i] += w_dot(r * words + j, xw);
    }
  }
  for (var i = 0u; i < R; i++) {
    partials[(lid.y * R + i) * (TX + 1u) + lid.x] = acc[i];
  }
  if (lid.y == 0u) {
    partials[SUMSQ_LANE * (TX + 1u) + lid.x] = sumsq;  // every thread row saw all of x; take row 0's sums
  }
  workgroupBarrier();
  let r = row0 + li;
  if (li < TY * R && r < params_norm.rows) {
    let inv_rms = inverseSqrt(lane_total(SUMSQ_LANE) / f32(params_norm.cols) + params_norm.eps);
    y_norm[params_norm.row_offset + r] = lane_total(li) * inv_rms;
  }
}

@compute @workgroup_size(TX, TY)
fn main_swiglu(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
               @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row0 = block_row0(wid, nwg);
  let words = params_swiglu.cols / 8u;
  var gate: array<f32, MAX_R>;
  var up: array<f32, MAX_R>;
  var sumsq = 0.0;
  for (var j = lid.x; j < words; j += TX) {
    let xw = x_word_normed(j);
    sumsq += xw.sumsq;
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + lid.y * R + i, params_swiglu.rows - 1u);
      gate[i] += gate_dot(r * words + j, xw);
      up[i] += up_dot(r * words + j, xw);
    }
  }
  for (var i = 0u; i < R; i++) {
    partials[(lid.y * R + i) * (TX + 1u) + lid.x] = gate[i];
    partials[(TY * R + lid.y * R + i) * (TX + 1u) + lid.x] = up[i];
  }
  if (lid.y == 0u) {
    partials[SUMSQ_LANE * (TX + 1u) + lid.x] = sumsq;
  }
  workgroupBarrier();
  let r = row0 + li;
  if (li < TY * R && r < params_swiglu.rows) {
    let inv_rms = inverseSqrt(lane_total(SUMSQ_LANE) / f32(params_swiglu.cols) + params_swiglu.eps);
    let g = lane_total(li) * inv_rms;
    let v = lane_total(TY * R + li) * inv_rms;
    y_swiglu[params_swiglu.row_offset + r] = act(g) * v;
  }
}
