// matvec.wgsl: decode matrix-vector products over one row chunk of a q4 or q8 weight, unpacked in registers.
//
// For r in 0..rows-1 (the chunk's rows) and W the chunk (rows x cols, docs/FORMAT.md planes):
//   main         y[row_offset + r] = dot(W[r, :], x)                   (y += ... when ACCUMULATE: residual add)
//   main_norm    y[row_offset + r] = dot(W[r, :], rmsnorm(x) * norm_w)  (RMSNorm folded in: no normed copy of x)
//   main_swiglu  y[row_offset + r] = silu(dot(Wg[r, :], x')) * dot(Wu[r, :], x'),  x' = rmsnorm(x) * norm_w
//                (ffn_norm + gate + up + SwiGLU in one pass; gate and up chunks must cover the same rows)
// The engine picks the pipeline by the tensor's storage through QBITS (4: q4, 8: q8); one code path for both.
//
// Bindings, in order (element counts; a "unit" is 16 bytes of qweight = 128 / QBITS weights):
//   main:        0 qweight vec4<u32>[rows * cols / (128 / QBITS)]   plane "qweight" of the chunk
//                1 scales  u32[...]                                 plane "scales" (q4: (scale, min) per group;
//                                                                   q8: two f16 scales per word)
//                2 x       vec4<f32>[cols / 4]                      input vector
//                3 y       f32[>= row_offset + rows]                output (read when ACCUMULATE)
//                4 params  Params
//   main_norm:   0 qweight, 1 scales, 2 x, 3 norm_w f32[cols] (RMSNorm weight), 4 y, 5 params
//   main_swiglu: 0 qweight, 1 scales (gate), 2 x, 3 norm_w, 4 up_qweight, 5 up_scales (up), 6 y, 7 params
//
// Dispatch: groups = ceil(rows / (TY * R)) workgroups of TX x TY threads, folded as (min(groups, 65535),
// ceil(groups / 65535)). Thread (tx, ty) owns rows ty*R .. ty*R+R-1 of its workgroup's block and walks units
// tx, tx+TX, ... of each row: one 16-byte load per unit and row, and each x load serves R rows. Partial sums meet
// in workgroup memory. Needs cols % 32 == 0 (whole groups) and rows >= 1.

override QBITS: u32 = 4u;           // bits per weight: 4 (q4) or 8 (q8)
override TX: u32 = 32u;             // threads along a row (units per row / TX loads per thread and row)
override TY: u32 = 4u;              // row groups per workgroup
override R: u32 = 2u;               // rows per thread, 1..MAX_R, and R <= TX (the final write uses TX*TY threads
                                    // for the TY*R rows): each x load is reused R times
override ACCUMULATE: bool = false;  // main: y[i] += W x (residual add into the destination) instead of y[i] = W x
override UNPACK_CVT: bool = false;  // unpack codes with unpack4x8unorm (int-to-float conversions) instead of the
                                    // exponent trick below; conversions are quarter-rate or slower on some GPUs

override UNIT_VALUES: u32 = 128u / QBITS;  // weights per 16-byte unit: 32 (q4: one group) or 16 (q8: half a group)
override X_VEC4S: u32 = UNIT_VALUES / 4u;  // x vec4s per unit: 8 (q4) or 4 (q8)
override LANES: u32 = 2u * TY * R + 1u;    // partial-sum lanes: gate/plain rows, up rows, then sum(x^2)
override SUMSQ_LANE: u32 = 2u * TY * R;
const MAX_R: u32 = 8u;
const TWO23: f32 = 8388608.0;       // 2^23: bitcast<f32>(0x4B000000 | n) == TWO23 + n exactly for n < 2^23
const EXP23: u32 = 0x4B000000u;
override CODE_UNIT: f32 = select(1.0, 255.0, UNPACK_CVT);  // d below sums code / CODE_UNIT * x

struct Params {
  rows: u32,        // rows of this chunk (outputs written), >= 1
  cols: u32,        // input features: elements of x, a multiple of 32
  row_offset: u32,  // element index in y of the chunk's first row
  eps: f32,         // RMSNorm epsilon added to mean(x^2) (main_norm, main_swiglu; unused by main)
}

@group(0) @binding(0) var<storage, read> qweight: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
// main
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
// main_norm and main_swiglu
@group(0) @binding(3) var<storage, read> norm_w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y_norm: array<f32>;
@group(0) @binding(5) var<uniform> params_norm: Params;
@group(0) @binding(4) var<storage, read> up_qweight: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read> up_scales: array<u32>;
@group(0) @binding(6) var<storage, read_write> y_swiglu: array<f32>;
@group(0) @binding(7) var<uniform> params_swiglu: Params;

// Lane l holds TX partial sums, one per thread column; rows padded to TX + 1 floats so that the writes (consecutive
// tx) and the reads (consecutive lanes, stride TX + 1, odd for even TX) fall into distinct memory banks.
var<workgroup> partials: array<f32, LANES * (TX + 1u)>;

// The x values of one unit (times x_scale()) as eight named vectors (q8 uses v0..v3), the sum of x (for q4
// minimums and the q8 bias) and the sum of squares. Named fields and unrolled code rather than an array indexed by a
// loop variable, which a compiler may place in local memory. (The looped version ran q4 at 18% of copy on an H100
// while q8 reached 90%; this version is not timed on a GPU yet: docs/PERFORMANCE.md.)
struct XUnit {
  v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>,
  v4: vec4<f32>, v5: vec4<f32>, v6: vec4<f32>, v7: vec4<f32>,
  sum: f32,
  sumsq: f32,
}

// The exponent trick reads the code in bits 4j.. of a word as a float worth code * 16^j (q4) or code * 256^j (q8)
// without shifting it down; x is scaled by the inverse power once per unit (exact: powers of two) instead.
fn x_scale() -> vec4<f32> {
  if (UNPACK_CVT) {
    return vec4<f32>(1.0);
  }
  if (QBITS == 4u) {
    return vec4<f32>(1.0, 1.0 / 16.0, 1.0 / 256.0, 1.0 / 4096.0);
  }
  return vec4<f32>(1.0, 1.0 / 256.0, 1.0, 1.0 / 256.0);
}

// The X_VEC4S x vectors of one unit in a[0 .. X_VEC4S - 1] (already times the RMSNorm weight where normed), scaled
// and summed into an XUnit.
fn x_pack(a: array<vec4<f32>, 8>) -> XUnit {
  var r: XUnit;
  let xs = x_scale();
  r.v0 = a[0] * xs;
  r.v1 = a[1] * xs;
  r.v2 = a[2] * xs;
  r.v3 = a[3] * xs;
  var s = a[0] + a[1] + a[2] + a[3];
  if (QBITS == 4u) {
    r.v4 = a[4] * xs;
    r.v5 = a[5] * xs;
    r.v6 = a[6] * xs;
    r.v7 = a[7] * xs;
    s += a[4] + a[5] + a[6] + a[7];
  }
  r.sum = dot(s, vec4<f32>(1.0));
  return r;
}

fn x_unit(u: u32) -> XUnit {
  let b = u * X_VEC4S;
  var a: array<vec4<f32>, 8>;
  a[0] = x[b];
  a[1] = x[b + 1u];
  a[2] = x[b + 2u];
  a[3] = x[b + 3u];
  if (QBITS == 4u) {
    a[4] = x[b + 4u];
    a[5] = x[b + 5u];
    a[6] = x[b + 6u];
    a[7] = x[b + 7u];
  }
  return x_pack(a);
}

fn x_unit_normed(u: u32) -> XUnit {
  let b = u * X_VEC4S;
  var a: array<vec4<f32>, 8>;
  var q = vec4<f32>(0.0);
  a[0] = x[b];
  a[1] = x[b + 1u];
  a[2] = x[b + 2u];
  a[3] = x[b + 3u];
  q = a[0] * a[0] + a[1] * a[1] + a[2] * a[2] + a[3] * a[3];
  a[0] *= norm_w[b];
  a[1] *= norm_w[b + 1u];
  a[2] *= norm_w[b + 2u];
  a[3] *= norm_w[b + 3u];
  if (QBITS == 4u) {
    a[4] = x[b + 4u];
    a[5] = x[b + 5u];
    a[6] = x[b + 6u];
    a[7] = x[b + 7u];
    q += a[4] * a[4] + a[5] * a[5] + a[6] * a[6] + a[7] * a[7];
    a[4] *= norm_w[b + 4u];
    a[5] *= norm_w[b + 5u];
    a[6] *= norm_w[b + 6u];
    a[7] *= norm_w[b + 7u];
  }
  var r = x_pack(a);
  r.sumsq = dot(q, vec4<f32>(1.0));
  return r;
}

// Index of the scales word of unit wi (= row * units_per_row + unit).
fn scale_index(wi: u32) -> u32 {
  if (QBITS == 4u) {
    return wi;  // one (scale, min) word per group, one group per unit
  }
  return wi >> 2u;  // group wi / 2, two f16 scales per word
}

// Codes of a q4 word w, elements 4h .. 4h+3 of it (h = 0: low half, 1: high half), times (1, 16, 256, 4096).
fn q4_codes(w: u32, h: u32) -> vec4<f32> {
  let bits = vec4<u32>(w >> (16u * h));
  return bitcast<vec4<f32>>((bits & vec4<u32>(0xFu, 0xF0u, 0xF00u, 0xF000u)) | vec4<u32>(EXP23)) - TWO23;
}

// Biased codes (q + 128) of a q8 word w (after xor 0x80808080), times (1, 256, 1, 256).
fn q8_codes(w: u32) -> vec4<f32> {
  let halves = vec4<u32>(w, w, w >> 16u, w >> 16u);
  return bitcast<vec4<f32>>((halves & vec4<u32>(0xFFu, 0xFF00u, 0xFFu, 0xFF00u)) | vec4<u32>(EXP23)) - TWO23;
}

// dot(8 q4 codes of word w, x vectors a (elements 0..3) and b (4..7)); code / CODE_UNIT * x.
fn q4_word_dot(w: u32, a: vec4<f32>, b: vec4<f32>) -> f32 {
  if (UNPACK_CVT) {
    // byte k holds elements 2k (low nibble) and 2k + 1 (high); unorm gives code / 255
    let lo = unpack4x8unorm(w & 0x0F0F0F0Fu);
    let hi = unpack4x8unorm((w >> 4u) & 0x0F0F0F0Fu);
    return dot(lo, vec4<f32>(a.xz, b.xz)) + dot(hi, vec4<f32>(a.yw, b.yw));
  }
  return dot(q4_codes(w, 0u), a) + dot(q4_codes(w, 1u), b);
}

fn q8_word_dot(w: u32, a: vec4<f32>) -> f32 {
  let biased = w ^ 0x80808080u;
  if (UNPACK_CVT) {
    return dot(unpack4x8unorm(biased), a);
  }
  return dot(q8_codes(biased), a);
}

// dot(weights of unit wi, x) from the packed unit w and its scales word sw.
fn unit_dot(w: vec4<u32>, sw: u32, wi: u32, xu: XUnit) -> f32 {
  if (QBITS == 4u) {
    // element 8k + j of the unit is nibble j of word k
    let d = (q4_word_dot(w.x, xu.v0, xu.v1) + q4_word_dot(w.y, xu.v2, xu.v3)) +
            (q4_word_dot(w.z, xu.v4, xu.v5) + q4_word_dot(w.w, xu.v6, xu.v7));
    let sm = unpack2x16float(sw);  // (scale, min): sum (s q + m) x = s sum q x + m sum x
    return sm.x * CODE_UNIT * d + sm.y * xu.sum;
  }
  // q8: bias the two's-complement bytes by 128 (xor) to read them unsigned, then take 128 sum x off
  let d = (q8_word_dot(w.x, xu.v0) + q8_word_dot(w.y, xu.v1)) + (q8_word_dot(w.z, xu.v2) + q8_word_dot(w.w, xu.v3));
  let s = unpack2x16float(sw)[(wi >> 1u) & 1u];
  return s * (CODE_UNIT * d - 128.0 * xu.sum);
}

// Unit wi of the bound weight (main, main_norm; the gate in main_swiglu) and of the up weight, dotted with xu.
fn w_dot(wi: u32, xu: XUnit) -> f32 {
  return unit_dot(qweight[wi], scales[scale_index(wi)], wi, xu);
}

fn up_dot(wi: u32, xu: XUnit) -> f32 {
  return unit_dot(up_qweight[wi], up_scales[scale_index(wi)], wi, xu);
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

fn silu(g: f32) -> f32 {
  return g / (1.0 + exp(-g));
}

@compute @workgroup_size(TX, TY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row0 = block_row0(wid, nwg);
  let units = params.cols / UNIT_VALUES;
  var acc: array<f32, MAX_R>;
  for (var u = lid.x; u < units; u += TX) {
    let xu = x_unit(u);
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + lid.y * R + i, params.rows - 1u);  // past the end: recompute the last row, store nothing
      acc[i] += w_dot(r * units + u, xu);
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
  let units = params_norm.cols / UNIT_VALUES;
  var acc: array<f32, MAX_R>;
  var sumsq = 0.0;
  for (var u = lid.x; u < units; u += TX) {
    let xu = x_unit_normed(u);
    sumsq += xu.sumsq;
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + lid.y * R + i, params_norm.rows - 1u);
      acc[i] += w_dot(r * units + u, xu);
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
  let units = params_swiglu.cols / UNIT_VALUES;
  var gate: array<f32, MAX_R>;
  var up: array<f32, MAX_R>;
  var sumsq = 0.0;
  for (var u = lid.x; u < units; u += TX) {
    let xu = x_unit_normed(u);
    sumsq += xu.sumsq;
    for (var i = 0u; i < R; i++) {
      let r = min(row0 + lid.y * R + i, params_swiglu.rows - 1u);
      gate[i] += w_dot(r * units + u, xu);
      up[i] += up_dot(r * units + u, xu);
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
    y_swiglu[params_swiglu.row_offset + r] = silu(g) * v;
  }
}
