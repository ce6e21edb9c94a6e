// matvec.wgsl: decode matrix-vector products over one row chunk of a q4 or q8 weight, unpacked in registers.
//
// For r in 0..rows-1 (the chunk's rows) and W the chunk (rows x cols, docs/FORMAT.md planes):
//   main         y[row_offset + r] = dot(W[r, :], x)                   (y += ... when ACCUMULATE: residual add)
//   main_norm    y[row_offset + r] = dot(W[r, :], rmsnorm(x) * norm_w)  (RMSNorm folded in: no normed copy of x)
//   main_swiglu  y[row_offset + r] = silu(dot(Wg[r, :], x')) * dot(Wu[r, :], x'),  x' = rmsnorm(x) * norm_w
//                (ffn_norm + gate + up + SwiGLU in one pass; gate and up chunks must cover the same rows)
//                (gelu_tanh instead of silu with GELU: gemma3's GeGLU)
// The engine picks the pipeline by the tensor's storage through QBITS (4: q4, 8: q8); one code path for both.
//
// Bindings, in order (element counts; a "word" is one u32 of qweight = 32 / QBITS weights):
//   main:        0 qweight u32[rows * cols / (32 / QBITS)]          plane "qweight" of the chunk
//                1 scales  u32[...]                                 plane "scales" (q4: (scale, min) per group;
//                                                                   q8: two f16 scales per word)
//                2 x       vec4<f32>[cols / 4]                      input vector
//                3 y       f32[>= row_offset + rows]                output (read when ACCUMULATE)
//                4 params  Params
//   main_norm:   0 qweight, 1 scales, 2 x, 3 norm_w f32[cols] (RMSNorm weight), 4 y, 5 params
//   main_swiglu: 0 qweight, 1 scales (gate), 2 x, 3 norm_w, 4 up_qweight, 5 up_scales (up), 6 y, 7 params
//
// Dispatch: groups = ceil(rows / (TY * R)) workgroups of TX x TY threads, folded as (min(groups, 65535),
// ceil(groups / 65535)). Thread (tx, ty) owns rows ty*R .. ty*R+R-1 of its workgroup's block and walks words
// tx, tx+TX, ... of each row: one 4-byte load per word and row, and each x load serves R rows. Partial sums meet
// in workgroup memory. Needs cols % 32 == 0 (whole groups) and rows >= 1.
//
// Why words, not 16-byte units, per thread: a thread's x values are then 32 bytes (q4) apart from its neighbour's,
// so a warp's x loads touch 8 cache lines rather than 32 (one per thread when each thread took a 128-byte unit of x);
// on an H200 the per-unit version moved 170-560 GB/s in the engine, bound by those scattered x loads, not by memory.

override QBITS: u32 = 4u;           // bits per weight: 4 (q4) or 8 (q8)
override TX: u32 = 32u;             // threads along a row (words per row / TX loads per thread and row)
override TY: u32 = 4u;              // row groups per workgroup
override R: u32 = 2u;               // rows per thread, 1..MAX_R, and R <= TX (the final write uses TX*TY threads
                                    // for the TY*R rows): each x load is reused R times
override UNROLL: u32 = 1u;          // words per thread and row in one loop step (1..4): the step's loads are all
                                    // independent, so a thread has UNROLL * R weight loads in flight, not R
override ACCUMULATE: bool = false;  // main: y[i] += W x (residual add into the destination) instead of y[i] = W x
override GELU: bool = false;        // main_swiglu: gate activation gelu_tanh (gemma3's GeGLU), not silu
override UNPACK_CVT: bool = false;  // unpack codes with unpack4x8unorm (int-to-float conversions) instead of the
                                    // exponent trick below; conversions are quarter-rate or slower on some GPUs

override WORD_VALUES: u32 = 32u / QBITS;  // weights per u32 word: 8 (q4) or 4 (q8)
override LANES: u32 = 2u * TY * R + 1u;   // partial-sum lanes: gate/plain rows, up rows, then sum(x^2)
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

@group(0) @binding(0) var<storage, read> qweight: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
// main
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;
// main_norm and main_swiglu
@group(0) @binding(3) var<storage, read> norm_w: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y_norm: array<f32>;
@group(0) @binding(5) var<uniform> params_norm: Params;
@group(0) @binding(4) var<storage, read> up_qweight: array<u32>;
@group(0) @binding(5) var<storage, read> up_scales: array<u32>;
@group(0) @binding(6) var<storage, read_write> y_swiglu: array<f32>;
@group(0) @binding(7) var<uniform> params_swiglu: Params;

// Lane l holds TX partial sums, one per thread column; rows padded to TX + 1 floats so that the writes (consecutive
// tx) and the reads (consecutive lanes, stride TX + 1, odd for even TX) fall into distinct memory banks.
var<workgroup> partials: array<f32, LANES * (TX + 1u)>;

// The x values of one word (times x_scale()): a holds elements 0..3, b elements 4..7 (q4 only); the sum of x (for
// q4 minimums and the q8 bias) and the sum of squares (before the RMSNorm weight).
struct XWord {
  a: vec4<f32>,
  b: vec4<f32>,
  sum: f32,
  sumsq: f32,
}

// The exponent trick reads the code in bits 4j.. of a word as a float worth code * 16^j (q4) or code * 256^j (q8)
// without shifting it down; x is scaled by the inverse power once per word (exact: powers of two) instead.
fn x_scale() -> vec4<f32> {
  if (UNPACK_CVT) {
    return vec4<f32>(1.0);
  }
  if (QBITS == 4u) {
    return vec4<f32>(1.0, 1.0 / 16.0, 1.0 / 256.0, 1.0 / 4096.0);
  }
  return vec4<f32>(1.0, 1.0 / 256.0, 1.0, 1.0 / 256.0);
}

// xw, or zeros where the word is past the row's end (an unrolled step's tail): its dot products then add exactly 0.
fn x_live(xw: XWord, live: bool) -> XWord {
  if (live) {
    return xw;
  }
  var r: XWord;
  return r;
}

// x vectors a (elements 0..3 of a word) and b (4..7, q4 only), already times the RMSNorm weight where normed,
// scaled and summed into an XWord.
fn x_pack(a: vec4<f32>, b: vec4<f32>) -> XWord {
  var r: XWord;
  let xs = x_scale();
  r.a = a * xs;
  if (QBITS == 4u) {
    r.b = b * xs;
    r.sum = dot(a + b, vec4<f32>(1.0));
  } else {
    r.sum = dot(a, vec4<f32>(1.0));
  }
  return r;
}

// Word j of a row covers x elements j * WORD_VALUES ..: vec4s 2j, 2j + 1 (q4) or j (q8).
fn x_word(j: u32) -> XWord {
  if (QBITS == 4u) {
    return x_pack(x[2u * j], x[2u * j + 1u]);
  }
  return x_pack(x[j], vec4<f32>(0.0));
}

// As x_word, of rmsnorm's numerator x * norm_w (the 1 / rms factor is applied to the row's total), with sum(x^2).
fn x_word_normed(j: u32) -> XWord {
  var r: XWord;
  if (QBITS == 4u) {
    let a = x[2u * j];
    let b = x[2u * j + 1u];
    r = x_pack(a * norm_w[2u * j], b * norm_w[2u * j + 1u]);
    r.sumsq = dot(a, a) + dot(b, b);
  } else {
    let a = x[j];
    r = x_pack(a * norm_w[j], vec4<f32>(0.0));
    r.sumsq = dot(a, a);
  }
  return r;
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

// Index of the scales word of word gw (= row * words_per_row + word); q4: 4 words per group, one (scale, min) word
// per group; q8: 8 words per group, two groups' f16 scales per scales word.
fn scale_index(gw: u32) -> u32 {
  if (QBITS == 4u) {
    return gw >> 2u;
  }
  return gw >> 4u;
}

// dot(weights of word gw, x) from the packed word w and its scales word sw.
fn word_dot(w: u32, sw: u32, gw: u32, xw: XWord) -> f32 {
  if (QBITS == 4u) {
    let sm = unpack2x16float(sw);  // (scale, min): sum (s q + m) x = s sum q x + m sum x
    return sm.x * CODE_UNIT * q4_word_dot(w, xw.a, xw.b) + sm.y * xw.sum;
  }
  // q8: bias the two's-complement bytes by 128 (xor) to read them unsigned, then take 128 sum x off
  let s = unpack2x16float(sw)[(gw >> 3u) & 1u];
  return s * (CODE_UNIT * q8_word_dot(w, xw.a) - 128.0 * xw.sum);
}

// Word gw of the bound weight (main, main_norm; the gate in main_swiglu) and of the up weight, dotted with xw.
fn w_dot(gw: u32, xw: XWord) -> f32 {
  return word_dot(qweight[gw], scales[scale_index(gw)], gw, xw);
}

fn up_dot(gw: u32, xw: XWord) -> f32 {
  return word_dot(up_qweight[gw], up_scales[scale_index(gw)], gw, xw);
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
  let words = params.cols / WORD_VALUES;
  var acc: array<f32, MAX_R>;
  for (var j0 = lid.x; j0 < words; j0 += TX * UNROLL) {
    for (var u = 0u; u < UNROLL; u++) {
      let j = min(j0 + u * TX, words - 1u);  // past the row's end: word words - 1 again, times 0
      let xw = x_live(x_word(j), j0 + u * TX < words);
      for (var i = 0u; i < R; i++) {
        let r = min(row0 + lid.y * R + i, params.rows - 1u);  // past the end: recompute the last row, store nothing
        acc[i] += w_dot(r * words + j, xw);
      }
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
  let words = params_norm.cols / WORD_VALUES;
  var acc: array<f32, MAX_R>;
  var sumsq = 0.0;
  for (var j0 = lid.x; j0 < words; j0 += TX * UNROLL) {
    for (var u = 0u; u < UNROLL; u++) {
      let j = min(j0 + u * TX, words - 1u);
      let xw = x_live(x_word_normed(j), j0 + u * TX < words);
      sumsq += xw.sumsq;
      for (var i = 0u; i < R; i++) {
        let r = min(row0 + lid.y * R + i, params_norm.rows - 1u);
        acc[i] += w_dot(r * words + j, xw);
      }
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
  let words = params_swiglu.cols / WORD_VALUES;
  var gate: array<f32, MAX_R>;
  var up: array<f32, MAX_R>;
  var sumsq = 0.0;
  for (var j0 = lid.x; j0 < words; j0 += TX * UNROLL) {
    for (var u = 0u; u < UNROLL; u++) {
      let j = min(j0 + u * TX, words - 1u);
      let xw = x_live(x_word_normed(j), j0 + u * TX < words);
      sumsq += xw.sumsq;
      for (var i = 0u; i < R; i++) {
        let r = min(row0 + lid.y * R + i, params_swiglu.rows - 1u);
        gate[i] += w_dot(r * words + j, xw);
        up[i] += up_dot(r * words + j, xw);
      }
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
