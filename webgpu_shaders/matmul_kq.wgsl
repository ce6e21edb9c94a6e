// matmul_kq.wgsl: prefill matrix product with one row chunk of a K-quant weight (q4k, q5k, q6k: llama.cpp's Q4_K,
// Q5_K, Q6_K carried exactly, docs/FORMAT.md), unpacked on chip. matmul.wgsl's algorithm and tunings, with the
// K-quant value of each weight (KTYPE and the decode: kquant.wgsl, joined by the loader; kernels.json "include"):
//
//   Y[t, row_offset + r] = sum_c X[t, c] * W[r, c]      t < tokens, r < rows (the chunk's rows), c < cols
//   (Y[t, ...] += ... when ACCUMULATE)
// The engine picks the pipeline by the tensor's storage through KTYPE (4: q4k, 5: q5k, 6: q6k). Each weight is
// dequantized into the tile exactly as docs/FORMAT.md orders it ((d sc) q - dmin m; (d sc) (q - 32)).
//
// Bindings, in order (element counts):
//   0 qweight u32[rows * cols / 8]           plane "qweight" of the chunk
//   1 qhigh   u32[...]                       plane "qhigh" (q5k, q6k); q4k: bind any buffer (qweight), not read
//   2 supers  u32[rows * cols / 256 * 5]     plane "super"
//   3 x       vec4<f32>[tokens * cols / 4]   X, row-major [tokens, cols]
//   4 y       f32[tokens * y_stride]         Y, row-major [tokens, y_stride]; this chunk fills its rows' columns
//   5 params  Params
//
// Dispatch as matmul.wgsl: (ceil(rows / (4 * RV * WX)), ceil(tokens / (4 * TV * WY)), 1) workgroups of WX x WY
// threads; per 32 columns (4 qweight words of a row, one sub-block or two) the tile's weights are unpacked into
// workgroup memory. Needs cols % 256 == 0. Tunings as matmul.wgsl's with QBITS 4 (16 RV <= 8 WY, 32 TV <= 8 WX).

override WX: u32 = 16u;             // threads along weight rows
override WY: u32 = 16u;             // threads along tokens
override RV: u32 = 2u;              // vec4s of weight rows per thread (4 * RV rows), 1 or 2
override TV: u32 = 1u;              // vec4s of tokens per thread (4 * TV tokens), 1 or 2
override ACCUMULATE: bool = false;  // Y += X W^T instead of Y = X W^T

const K: u32 = 32u;       // columns per step
const MAX_V: u32 = 2u;    // largest RV and TV (register arrays have a fixed size)
override BR: u32 = 4u * RV * WX;          // weight rows per tile
override BT: u32 = 4u * TV * WY;          // tokens per tile
const WORDS_PER_GROUP: u32 = 4u;          // qweight words of one row's 32 columns
const MAX_ITEMS: u32 = 8u;  // largest W_ITEMS and X_ITEMS
override W_ITEMS: u32 = (BR * WORDS_PER_GROUP + WX * WY - 1u) / (WX * WY);  // weight words per thread and group
override X_ITEMS: u32 = (BT * (K / 4u) + WX * WY - 1u) / (WX * WY);         // X vec4s per thread and group

struct Params {
  rows: u32,        // rows of this chunk, >= 1
  cols: u32,        // input features, a multiple of 256
  row_offset: u32,  // column of Y (element within a Y row) of the chunk's first row
  tokens: u32,      // rows of X and Y, >= 1
  y_stride: u32,    // elements per Y row (all chunks' rows together)
}

@group(0) @binding(0) var<storage, read> qweight: array<u32>;
@group(0) @binding(1) var<storage, read> qhigh: array<u32>;
@group(0) @binding(2) var<storage, read> supers: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// k-major tiles: w_tile[k][r / 4][r % 4], x_tile[k][t / 4][t % 4]. Consecutive threads write consecutive r (or t).
var<workgroup> w_tile: array<vec4<f32>, K * BR / 4u>;
var<workgroup> x_tile: array<vec4<f32>, K * BT / 4u>;

// Dequantizes `w`, qweight word gw of the chunk (column word * 8 .. of the current 32), into tile row lr.
fn unpack_word(w: u32, gw: u32, word: u32, lr: u32) {
  var qh = 0u;
  if (KTYPE != 4u) {
    qh = qhigh[qhigh_index(gw)];
  }
  let h = k_header(gw);
  let sm = k_affine(supers[h.x], supers[h.y], supers[h.z], gw);
  let c = k_codes(w, qh, gw);
  let k0 = word * 8u;
  let at = lr / 4u;
  let lane = lr % 4u;
  for (var j = 0u; j < 4u; j++) {
    w_tile[(k0 + j) * (BR / 4u) + at][lane] = sm.x * c.a[j] - sm.y;
    w_tile[(k0 + 4u + j) * (BR / 4u) + at][lane] = sm.x * c.b[j] - sm.y;
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
  var wi: array<u32, MAX_ITEMS>;        // their indices in qweight
  var xq: array<vec4<f32>, MAX_ITEMS>;  // X vec4s
  for (var g = 0u; g <= groups; g++) {
    if (g > 0u) {
      // group g - 1 from the registers into the tiles
      for (var n = 0u; n < W_ITEMS; n++) {
        let item = li + n * WX * WY;
        if (item < BR * WORDS_PER_GROUP) {
          let lr = item % BR;
          unpack_word(wq[n], wi[n], item / BR, lr);
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
          wi[n] = grp * WORDS_PER_GROUP + item / BR;
          wq[n] = qweight[wi[n]];
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
