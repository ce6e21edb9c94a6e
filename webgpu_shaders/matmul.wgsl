// matmul.wgsl: prefill matrix product with one row chunk of a q4 or q8 weight, unpacked on chip.
//
//   Y[t, row_offset + r] = sum_c X[t, c] * W[r, c]      t < tokens, r < rows (the chunk's rows), c < cols
//   (Y[t, ...] += ... when ACCUMULATE: the residual add of o_proj and ffn_down fused into the epilogue)
// The engine picks the pipeline by the tensor's storage through QBITS (4: q4, 8: q8).
//
// Bindings, in order (element counts):
//   0 qweight u32[rows * cols * QBITS / 32]  plane "qweight" of the chunk (docs/FORMAT.md): a row's group is 4 words
//                                            (q4) or 8 (q8)
//   1 scales  u32[...]                       plane "scales"
//   2 x       vec4<f32>[tokens * cols / 4]   X, row-major [tokens, cols]
//   3 y       f32[tokens * y_stride]         Y, row-major [tokens, y_stride]; this chunk fills its rows' columns
//   4 params  Params
//
// Dispatch: (ceil(rows / (4 * RV * WX)), ceil(tokens / (4 * TV * WY)), 1) workgroups of WX x WY threads. A workgroup
// owns a tile of BR = 4*RV*WX weight rows by BT = 4*TV*WY tokens. Per quantization group (32 columns) it unpacks the
// tile's weights once into workgroup memory (a 32-column slice, not a dequantized copy of the tensor) and stages X
// beside it; each thread then accumulates a register tile of 4*RV rows x 4*TV tokens. The next group's weights and X
// are loaded into registers while the current one is multiplied.
// Loads from memory are whole: neighbouring threads take the words of a row's group (4 for q4, 8 for q8), each
// with the group's scale word, and X as vec4s along a token's row, 8 neighbouring threads per token, so a warp's X
// load is 4 whole 128-byte lines (before, X across tokens made each warp instruction a 32-line request).
// The unpacking is spread over all threads, a word (8 or 4 weights) each: when a thread unpacked a whole row's group,
// a 64-row tile kept 64 of 256 threads busy between the barriers while the rest waited.
// Workgroup memory: w_tile k-major, w_tile[k][(r / 4) ^ wswz(k)][r % 4]. A warp's unpacking threads store words
// 0 .. 3 of 8 rows (q4; 0 .. 7 of 4 rows for q8) at once; without the XOR a row's words would all land in one bank.
// x_tile token-major, x_tile[t][c4 ^ (t & 7)] = X[t, 4 c4 .. 4 c4 + 3]: the XOR spreads the 4 tokens a warp reads at
// one c4 over different banks. Thread (x, y) owns rows 4 (x + i WX) .. + 3 (i < RV) and tokens y + WY m
// (m < 4 TV): per 4 columns it loads 4 TV X vec4s (4 columns of a token each) and 4 RV weight vec4s (4 rows of a
// column each) for 64 RV TV multiply-adds. (wswz(k) is the same for a whole column k, so a warp's weight reads are
// the same vec4s as without it, in another order: no new conflicts.)
// Every Y element is summed over c in increasing order, whatever the tuning.
// Needs cols % 32 == 0. Tunings must keep RV, TV in 1..2; RV WX a multiple of 8 (the XOR stays within a column);
// W_ITEMS and X_ITEMS <= 8 (RV QBITS <= 2 WY, 32 TV <= 8 WX); and the tiles, 128 (BR + BT) bytes, within the
// device's workgroup memory (WebGPU's default 16 KiB; probe() asks for 32 KiB where the adapter offers it).

override QBITS: u32 = 4u;           // bits per weight: 4 (q4) or 8 (q8)
override WX: u32 = 16u;             // threads along weight rows
override WY: u32 = 16u;             // threads along tokens
override RV: u32 = 2u;              // vec4s of weight rows per thread (4 * RV rows), 1 or 2
override TV: u32 = 1u;              // vec4s of tokens per thread (4 * TV tokens), 1 or 2
override ACCUMULATE: bool = false;  // Y += X W^T instead of Y = X W^T

const K: u32 = 32u;       // columns per step: one quantization group
const K4: u32 = 8u;       // X vec4s of a token per step
const MAX_V: u32 = 2u;    // largest RV and TV (register arrays have a fixed size)
override BR: u32 = 4u * RV * WX;          // weight rows per tile
override BT: u32 = 4u * TV * WY;          // tokens per tile
override QW: u32 = QBITS;                 // words of one row's group: 4 (q4) or 8 (q8)
const MAX_ITEMS: u32 = 8u;  // largest W_ITEMS and X_ITEMS
override W_ITEMS: u32 = (BR * QW + WX * WY - 1u) / (WX * WY);  // weight words per thread and group
override X_ITEMS: u32 = (BT * K4 + WX * WY - 1u) / (WX * WY);  // X vec4s per thread and group

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

var<workgroup> w_tile: array<vec4<f32>, K * BR / 4u>;
var<workgroup> x_tile: array<vec4<f32>, BT * K4>;

// The XOR that spreads column k's stores over the banks: which word of its row group column k is from, times 2 for
// q4 (a warp stores two vec4s of rows per word there), so 0 .. 6 (q4) or 0 .. 7 (q8).
fn wswz(k: u32) -> u32 {
  return (k / (32u / QW)) * (8u / QW);
}

// Dequantizes word `word` (0 .. QW - 1) of group `grp` of the chunk (a row's group of 32 values; its scale word
// `sw`) into tile row lr: columns 8 word .. + 7 (q4) or 4 word .. + 3 (q8).
fn unpack_word(w: u32, sw: u32, grp: u32, word: u32, lr: u32) {
  let at = lr / 4u;
  let lane = lr % 4u;
  if (QBITS == 4u) {
    let sm = unpack2x16float(sw);  // (scale, min)
    for (var j = 0u; j < 8u; j++) {
      let q = f32((w >> (4u * j)) & 0xFu);
      let k = word * 8u + j;
      w_tile[k * (BR / 4u) + (at ^ wswz(k))][lane] = sm.x * q + sm.y;
    }
  } else {
    let s = unpack2x16float(sw)[grp & 1u];
    for (var j = 0u; j < 4u; j++) {
      let q = f32(bitcast<i32>(w << (24u - 8u * j)) >> 24u);  // sign-extended byte j
      let k = word * 4u + j;
      w_tile[k * (BR / 4u) + (at ^ wswz(k))][lane] = s * q;
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
  // acc[(i * 4 + a) * MAX_V + j][b]: row 4 (lid.x + i WX) + a, token lid.y + WY (4 j + b)
  var acc: array<vec4<f32>, 4u * MAX_V * MAX_V>;
  // the next group's share of this thread, loaded from memory while the current group is multiplied:
  // weight item n = li + n WX WY -> (row item / QW, word item % QW); X item n -> (token item / K4, vec4 item % K4)
  var wq: array<u32, MAX_ITEMS>;        // weight words
  var ws: array<u32, MAX_ITEMS>;        // their scale words
  var xq: array<vec4<f32>, MAX_ITEMS>;  // X vec4s
  for (var g = 0u; g <= groups; g++) {
    if (g > 0u) {
      // group g - 1 from the registers into the tiles
      for (var n = 0u; n < W_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BR * QW) {
          let lr = item / QW;
          unpack_word(wq[n], ws[n], min(r_base + lr, params.rows - 1u) * groups + g - 1u, item % QW, lr);
        }
      }
      for (var n = 0u; n < X_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BT * K4) {
          let lt = item / K4;
          x_tile[lt * K4 + ((item % K4) ^ (lt & 7u))] = xq[n];
        }
      }
      workgroupBarrier();
    }
    if (g < groups) {
      // group g from memory into the registers (in flight during the multiply below)
      for (var n = 0u; n < W_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BR * QW) {
          let grp = min(r_base + item / QW, params.rows - 1u) * groups + g;  // the group's index in the chunk
          wq[n] = qweight[grp * QW + item % QW];
          ws[n] = scales[select(grp, grp >> 1u, QBITS == 8u)];
        }
      }
      for (var n = 0u; n < X_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BT * K4) {
          let t = min(t_base + item / K4, params.tokens - 1u);
          xq[n] = x[t * cols4 + g * K4 + item % K4];
        }
      }
    }
    if (g > 0u) {
      for (var c4 = 0u; c4 < K4; c4++) {
        // xr[m]: columns 4 c4 .. + 3 of token lid.y + WY m
        var xr: array<vec4<f32>, 4u * MAX_V>;
        for (var m = 0u; m < 4u * TV; m++) {
          let lt = lid.y + m * WY;
          xr[m] = x_tile[lt * K4 + (c4 ^ (lt & 7u))];
        }
        for (var kk = 0u; kk < 4u; kk++) {
          var wv: array<vec4<f32>, MAX_V>;
          for (var i = 0u; i < RV; i++) {
            let k = c4 * 4u + kk;
            wv[i] = w_tile[k * (BR / 4u) + ((lid.x + i * WX) ^ wswz(k))];
          }
          for (var j = 0u; j < TV; j++) {
            let xv = vec4<f32>(xr[4u * j][kk], xr[4u * j + 1u][kk], xr[4u * j + 2u][kk], xr[4u * j + 3u][kk]);
            for (var i = 0u; i < RV; i++) {
              for (var a = 0u; a < 4u; a++) {
                acc[(i * 4u + a) * MAX_V + j] += wv[i][a] * xv;
              }
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
          let t = t_base + lid.y + (4u * j + b) * WY;
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
