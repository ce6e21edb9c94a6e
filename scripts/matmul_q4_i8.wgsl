// matmul_q4_i8.wgsl: the prefill matmul with int8 activations, for measurement only (scripts/bench_matmul_i8.mjs;
// the engine does not use it). It answers what issue 10's int8 route would give on a GPU before anyone changes the
// engine's arithmetic: rounding activations changes logits, so the reference engine would have to round the same way
// (the owner's choice in the stop-21 note).
//
// quantize: X f32 [tokens, cols] -> per token and quantization group of 32 columns, d = max|x| / 127 and
//   xq = round(x / d) in -127..127 (llama.cpp's q8_1 does the same), packed 4 to a u32 as WGSL's dot4I8Packed takes
//   them, and s = d * sum(xq). Words 2c and 2c + 1 of a group hold its elements 8c + (0, 2, 4, 6) and 8c + (1, 3, 5, 7):
//   the order in which a q4 word's nibbles fall when masked (w & 0x0F0F0F0F) and shifted ((w >> 4) & 0x0F0F0F0F).
// main: Y[t, row_offset + r] = sum_g (scale[r, g] d[t, g] sum_i q[r, g, i] xq[t, g, i] + min[r, g] s[t, g])
//   for a q4 weight (w = scale * q + min, docs/FORMAT.md): the inner sums are exact i32 dot products (dot4I8Packed:
//   four int8 products per instruction, where f32 needs four multiply-adds).
//
// Bindings, in order (element counts):
//   quantize: 0 x f32[tokens * cols] as vec4s, 1 xq u32[tokens * cols / 4], 2 xs vec2<f32>[tokens * cols / 32]
//             (d, s), 3 params
//   main:     0 qweight u32[rows * cols / 8], 1 scales u32[rows * cols / 32] ((scale, min) f16 pairs),
//             2 xq, 3 xs (as quantize wrote them), 4 y f32[tokens * y_stride], 5 params
// Dispatch: quantize (ceil(tokens * cols / 32 / 64), 1, 1) workgroups of 64 (one thread per token and group);
// main (ceil(rows / (4 RV WX)), ceil(tokens / (4 TV WY)), 1) workgroups of WX x WY threads, as matmul.wgsl: a
// workgroup owns BR = 4 RV WX weight rows by BT = 4 TV WY tokens; per stage of GS groups it stages the weights'
// codes (as int8 words) and X's words in workgroup memory, k-major; each thread accumulates 4 RV rows x 4 TV tokens,
// in i32 within a group and in f32 across groups. Needs cols % 32 == 0, RV and TV in 1..2.

override WX: u32 = 16u;  // threads along weight rows
override WY: u32 = 8u;   // threads along tokens
override RV: u32 = 1u;   // vec4s of weight rows per thread (4 RV rows)
override TV: u32 = 1u;   // vec4s of tokens per thread (4 TV tokens)
override GS: u32 = 2u;   // quantization groups (32 columns) per stage between barriers

const MAX_V: u32 = 2u;   // largest RV and TV
const KW: u32 = 8u;      // int8 words per group: 32 values, 4 per word
override BR: u32 = 4u * RV * WX;
override BT: u32 = 4u * TV * WY;
override THREADS: u32 = WX * WY;

struct Params {
  rows: u32,        // rows of the weight (main); unused by quantize
  cols: u32,        // input features, a multiple of 32
  row_offset: u32,  // column of Y of the first row
  tokens: u32,      // rows of X and Y, >= 1
  y_stride: u32,    // elements per Y row
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> xq_out: array<u32>;
@group(0) @binding(2) var<storage, read_write> xs_out: array<vec2<f32>>;
@group(0) @binding(3) var<uniform> qparams: Params;

@group(0) @binding(0) var<storage, read> qweight: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read> xq: array<u32>;
@group(0) @binding(3) var<storage, read> xs: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(64)
fn quantize(@builtin(global_invocation_id) gid: vec3<u32>) {
  let groups = qparams.cols / 32u;
  let i = gid.x;
  if (i >= qparams.tokens * groups) {
    return;
  }
  let base = (i / groups) * (qparams.cols / 4u) + (i % groups) * KW;  // first vec4 of X (= first word of xq)
  var v: array<vec4<f32>, KW>;
  var amax = 0.0;
  for (var k = 0u; k < KW; k++) {
    v[k] = x[base + k];
    let a = abs(v[k]);
    amax = max(amax, max(max(a.x, a.y), max(a.z, a.w)));
  }
  let inv = select(0.0, 127.0 / amax, amax > 0.0);
  var sum = vec4<i32>(0);
  for (var c = 0u; c < 4u; c++) {
    let e = clamp(round(v[2u * c] * inv), vec4<f32>(-127.0), vec4<f32>(127.0));       // elements 8c .. 8c + 3
    let o = clamp(round(v[2u * c + 1u] * inv), vec4<f32>(-127.0), vec4<f32>(127.0));  // elements 8c + 4 .. 8c + 7
    let even = vec4<i32>(vec4<f32>(e.x, e.z, o.x, o.z));
    let odd = vec4<i32>(vec4<f32>(e.y, e.w, o.y, o.w));
    xq_out[base + 2u * c] = pack4xI8(even);
    xq_out[base + 2u * c + 1u] = pack4xI8(odd);
    sum += even + odd;
  }
  let d = amax / 127.0;
  xs_out[i] = vec2<f32>(d, d * f32(sum.x + sum.y + sum.z + sum.w));
}

// k-major stages: w_tile[(gg KW + k) BR / 4 + r / 4][r % 4] is int8 word k of group gg of tile row r; x_tile alike
var<workgroup> w_tile: array<vec4<u32>, GS * KW * BR / 4u>;
var<workgroup> w_sm: array<vec2<f32>, GS * BR>;  // (scale, min) of tile row r in group gg: [gg BR + r]
var<workgroup> x_tile: array<vec4<u32>, GS * KW * BT / 4u>;
var<workgroup> x_sm: array<vec2<f32>, GS * BT>;  // (d, s) of tile token t in group gg: [gg BT + t]

@compute @workgroup_size(WX, WY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let r_base = wid.x * BR;
  let t_base = wid.y * BT;
  let groups = params.cols / 32u;
  let x_words = params.cols / 4u;  // xq words per token
  // acc[(i * 4 + a) * MAX_V + j]: row 4 (lid.x + i WX) + a, tokens 4 (lid.y + j WY) .. + 3
  var acc: array<vec4<f32>, 4u * MAX_V * MAX_V>;
  for (var g0 = 0u; g0 < groups; g0 += GS) {
    let ng = min(GS, groups - g0);
    // a q4 word holds 8 codes (0..15); masked and shifted it is two int8 words in quantize's element order
    for (var item = li; item < GS * 4u * BR; item += THREADS) {
      let lr = item % BR;
      let w = (item / BR) % 4u;
      let gg = item / (4u * BR);
      if (gg < ng) {
        let grp = min(r_base + lr, params.rows - 1u) * groups + g0 + gg;
        let word = qweight[grp * 4u + w];
        let k = gg * KW + 2u * w;
        w_tile[k * (BR / 4u) + lr / 4u][lr % 4u] = word & 0x0F0F0F0Fu;
        w_tile[(k + 1u) * (BR / 4u) + lr / 4u][lr % 4u] = (word >> 4u) & 0x0F0F0F0Fu;
        if (w == 0u) {
          w_sm[gg * BR + lr] = unpack2x16float(scales[grp]);
        }
      }
    }
    for (var item = li; item < GS * KW * BT; item += THREADS) {
      let lt = item % BT;
      let k = (item / BT) % KW;
      let gg = item / (KW * BT);
      if (gg < ng) {
        let t = min(t_base + lt, params.tokens - 1u);
        x_tile[(gg * KW + k) * (BT / 4u) + lt / 4u][lt % 4u] = xq[t * x_words + (g0 + gg) * KW + k];
        if (k == 0u) {
          x_sm[gg * BT + lt] = xs[t * groups + g0 + gg];
        }
      }
    }
    workgroupBarrier();
    for (var gg = 0u; gg < ng; gg++) {
      // zeroed by hand: the naga of the kernel tests zeroes a loop-local var only once (gfx-rs/wgpu#9489), where
      // WGSL (and Tint) zero it on every iteration
      var idot: array<vec4<i32>, 4u * MAX_V * MAX_V>;
      for (var n = 0u; n < 4u * MAX_V * MAX_V; n++) {
        idot[n] = vec4<i32>(0);
      }
      for (var k = 0u; k < KW; k++) {
        var wv: array<vec4<u32>, MAX_V>;
        var xv: array<vec4<u32>, MAX_V>;
        for (var i = 0u; i < RV; i++) {
          wv[i] = w_tile[(gg * KW + k) * (BR / 4u) + lid.x + i * WX];
        }
        for (var j = 0u; j < TV; j++) {
          xv[j] = x_tile[(gg * KW + k) * (BT / 4u) + lid.y + j * WY];
        }
        for (var i = 0u; i < RV; i++) {
          for (var a = 0u; a < 4u; a++) {
            for (var j = 0u; j < TV; j++) {
              idot[(i * 4u + a) * MAX_V + j] += vec4<i32>(dot4I8Packed(wv[i][a], xv[j].x),
                dot4I8Packed(wv[i][a], xv[j].y), dot4I8Packed(wv[i][a], xv[j].z), dot4I8Packed(wv[i][a], xv[j].w));
            }
          }
        }
      }
      for (var j = 0u; j < TV; j++) {
        let t0 = gg * BT + (lid.y + j * WY) * 4u;
        let ds = vec4<f32>(x_sm[t0].x, x_sm[t0 + 1u].x, x_sm[t0 + 2u].x, x_sm[t0 + 3u].x);
        let ss = vec4<f32>(x_sm[t0].y, x_sm[t0 + 1u].y, x_sm[t0 + 2u].y, x_sm[t0 + 3u].y);
        for (var i = 0u; i < RV; i++) {
          for (var a = 0u; a < 4u; a++) {
            let sm = w_sm[gg * BR + (lid.x + i * WX) * 4u + a];
            let n = (i * 4u + a) * MAX_V + j;
            acc[n] += sm.x * ds * vec4<f32>(idot[n]) + sm.y * ss;
          }
        }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < RV; i++) {
    for (var a = 0u; a < 4u; a++) {
      let r = r_base + (lid.x + i * WX) * 4u + a;
      for (var j = 0u; j < TV; j++) {
        for (var b = 0u; b < 4u; b++) {
          let t = t_base + (lid.y + j * WY) * 4u + b;
          if (t < params.tokens && r < params.rows) {
            y[t * params.y_stride + params.row_offset + r] = acc[(i * 4u + a) * MAX_V + j][b];
          }
        }
      }
    }
  }
}
