// matmul.wgsl: prefill matrix product with one row chunk of a q4 or q8 weight, unpacked on chip.
//
//   Y[t, row_offset + r] = sum_c X[t, c] * W[r, c]      t < tokens, r < rows (the chunk's rows), c < cols
//   (Y[t, ...] += ... when ACCUMULATE: the residual add of o_proj and ffn_down fused into the epilogue)
// The engine picks the pipeline by the tensor's storage through QBITS (4: q4, 8: q8).
//
// Bindings, in order (element counts):
//   0 qweight u32[rows * cols * QBITS / 32]  plane "qweight" of the chunk (docs/FORMAT.md)
//   1 scales  u32[...]                       plane "scales"
//   2 x       vec4<f32>[tokens * cols / 4]   X, row-major [tokens, cols]
//   3 y       f32[tokens * y_stride]         Y, row-major [tokens, y_stride]; this chunk fills its rows' columns
//   4 params  Params
//
// Dispatch: (ceil(rows / (4 * RV * WX)), ceil(tokens / (4 * TV * WY)), 1) workgroups of WX x WY threads. A workgroup
// owns a tile of BR = 4*RV*WX weight rows by BT = 4*TV*WY tokens. Per quantization group (32 columns) it unpacks the
// tile's weights once into workgroup memory (a 32-column slice, not a dequantized copy of the tensor) and stages X
// beside it, both k-major as vec4s; each thread then accumulates a register tile of 4*RV rows x 4*TV tokens: per
// column, RV + TV vec4 loads from workgroup memory feed 16*RV*TV multiply-adds. Thread (x, y) owns rows
// 4 (x + i WX) .. + 3 and tokens 4 (y + j WY) .. + 3 (i < RV, j < TV), so a warp's weight loads are consecutive
// vec4s and its X loads broadcasts. The next group's words and X are loaded into registers while the current one is
// multiplied. Every Y element is summed over c in increasing order, whatever the tuning.
// Needs cols % 32 == 0. Tunings must keep RV, TV in 1..2, W_ITEMS and X_ITEMS <= 8 (4 RV QBITS <= 8 WY,
// 32 TV <= 8 WX) and the tiles within WebGPU's default 16 KiB of workgroup memory: 128 (BR + BT) <= 16384.

override QBITS: u32 = 4u;           // bits per weight: 4 (q4) or 8 (q8)
override WX: u32 = 16u;             // threads along weight rows
override WY: u32 = 16u;             // threads along tokens
override RV: u32 = 2u;              // vec4s of weight rows per thread (4 * RV rows), 1 or 2
override TV: u32 = 1u;              // vec4s of tokens per thread (4 * TV tokens), 1 or 2
override ACCUMULATE: bool = false;  // Y += X W^T instead of Y = X W^T

const K: u32 = 32u;       // columns per step: one quantization group
const MAX_V: u32 = 2u;    // largest RV and TV (register arrays have a fixed size)
override BR: u32 = 4u * RV * WX;          // weight rows per tile
override BT: u32 = 4u * TV * WY;          // tokens per tile
override WORDS_PER_GROUP: u32 = QBITS;    // u32 words of one row's group: 4 (q4) or 8 (q8)
override VALUES_PER_WORD: u32 = 32u / QBITS;
const MAX_ITEMS: u32 = 8u;  // largest W_ITEMS and X_ITEMS
override W_ITEMS: u32 = (BR * WORDS_PER_GROUP + WX * WY - 1u) / (WX * WY);  // weight words per thread and group
override X_ITEMS: u32 = (BT * (K / 4u) + WX * WY - 1u) / (WX * WY);         // X vec4s per thread and group

struct Params {
  rows: u32,        // rows of this chunk, >= 1
  cols: u32,        // input features, a multiple of 32
  row_offset: u32,  // column of Y (element within a Y row) of the chunk's first row
  tokens: u32,      // rows of X and Y, >= 1
  y_stride: u32,    // elements per Y row (all chunks' rows together)
}

@group(0) @binding(0) var<storage, read> qweight: array<u32>;
@group(0) @binding(1) var<storage, read> scales: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// k-major tiles: w_tile[k][r / 4][r % 4], x_tile[k][t / 4][t % 4]. Consecutive threads write consecutive r (or t).
var<workgroup> w_tile: array<vec4<f32>, K * BR / 4u>;
var<workgroup> x_tile: array<vec4<f32>, K * BT / 4u>;

// Dequantizes `w`, word `word` of group g of chunk row r (its scale word `sw`), into tile row lr: tile columns
// word * VALUES_PER_WORD + j.
fn unpack_word(w: u32, sw: u32, r: u32, g: u32, word: u32, lr: u32) {
  let k0 = word * VALUES_PER_WORD;
  let at = lr / 4u;
  let lane = lr % 4u;
  if (QBITS == 4u) {
    let sm = unpack2x16float(sw);  // (scale, min)
    for (var j = 0u; j < 8u; j++) {
      let q = f32((w >> (4u * j)) & 0xFu);
      w_tile[(k0 + j) * (BR / 4u) + at][lane] = sm.x * q + sm.y;
    }
  } else {
    let grp = r * (params.cols / K) + g;
    let s = unpack2x16float(sw)[grp & 1u];
    for (var j = 0u; j < 4u; j++) {
      let q = f32(bitcast<i32>(w << (24u - 8u * j)) >> 24u);  // sign-extended byte j
      w_tile[(k0 + j) * (BR / 4u) + at][lane] = s * q;
    }
  }
}

@compute @workgroup_size(WX, WY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let r_base = wid.x * BR;
  let t_base = wid.y * BT;
  let groups = params.cols / K;
  let cols4 = params.cols / 4u;
  // acc[(i * 4 + a) * MAX_V + j]: row 4 (lid.x + i WX) + a, tokens 4 (lid.y + j WY) .. + 3
  var acc: array<vec4<f32>, 4u * MAX_V * MAX_V>;
  // the next group's share of this thread, loaded from memory while the current group is multiplied:
  // weight item n = li + n WX WY -> (row item % BR, word item / BR); X item n -> (token item % BT, vec4 item / BT)
  var wq: array<u32, MAX_ITEMS>;        // weight words
  var ws: array<u32, MAX_ITEMS>;        // their scale words
  var xq: array<vec4<f32>, MAX_ITEMS>;  // X vec4s
  for (var g = 0u; g <= groups; g++) {
    if (g > 0u) {
      // group g - 1 from the registers into the tiles
      for (var n = 0u; n < W_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BR * WORDS_PER_GROUP) {
          let lr = item % BR;
          unpack_word(wq[n], ws[n], min(r_base + lr, params.rows - 1u), g - 1u, item / BR, lr);
        }
      }
      for (var n = 0u; n < X_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BT * (K / 4u)) {
          let lt = item % BT;
          let c4 = item / BT;
          for (var j = 0u; j < 4u; j++) {
            x_tile[(c4 * 4u + j) * (BT / 4u) + lt / 4u][lt % 4u] = xq[n][j];
          }
        }
      }
      workgroupBarrier();
    }
    if (g < groups) {
      // group g from memory into the registers (in flight during the multiply below)
      for (var n = 0u; n < W_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BR * WORDS_PER_GROUP) {
          let r = min(r_base + item % BR, params.rows - 1u);
          let grp = r * groups + g;  // the group's index in the chunk
          wq[n] = qweight[grp * WORDS_PER_GROUP + item / BR];
          ws[n] = scales[select(grp, grp >> 1u, QBITS == 8u)];
        }
      }
      for (var n = 0u; n < X_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BT * (K / 4u)) {
          let t = min(t_base + item % BT, params.tokens - 1u);
          xq[n] = x[t * cols4 + g * (K / 4u) + item / BT];
        }
      }
    }
    if (g > 0u) {
      for (var k = 0u; k < K; k++) {
        var wv: array<vec4<f32>, MAX_V>;
        var xv: array<vec4<f32>, MAX_V>;
        for (var i = 0u; i < RV; i++) {
          wv[i] = w_tile[k * (BR / 4u) + lid.x + i * WX];
        }
        for (var j = 0u; j < TV; j++) {
          xv[j] = x_tile[k * (BT / 4u) + lid.y + j * WY];
        }
        for (var i = 0u; i < RV; i++) {
          for (var a = 0u; a < 4u; a++) {
            for (var j = 0u; j < TV; j++) {
              acc[(i * 4u + a) * MAX_V + j] += wv[i][a] * xv[j];
            }
          }
        }
      }
      workgroupBarrier();
    }
  }
  for (var i = 0u; i < RV; i++) {
    for (var a = 0u; a < 4u; a++) {
      let r = r_base + (lid.x + i * WX) * 4u + a;
      for (var j = 0u; j < TV; j++) {
        for (var b = 0u; b < 4u; b++) {
          let t = t_base + (lid.y + j * WY) * 4u + b;
          if (t < params.tokens && r < params.rows) {
            let o = t * params.y_stride + params.row_offset + r;
            var v = acc[(i * 4u + a) * MAX_V + j][b];
            if (ACCUMULATE) {
              v += y[o];
            }
            y[o] = v;
          }
        }
      }
    }
  }
}
