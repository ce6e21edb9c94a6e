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
// Dispatch: (ceil(rows / (4 * WX)), ceil(tokens / (2 * WY)), 1) workgroups of WX x WY threads. A workgroup owns a
// tile of 4*WX weight rows by 2*WY tokens; per quantization group (32 columns) it unpacks the tile's weights once
// into workgroup memory (a 32-column slice, not a dequantized copy of the tensor), stages X beside it, and each
// thread accumulates 4 rows x 2 tokens. Needs cols % 32 == 0.

override QBITS: u32 = 4u;           // bits per weight: 4 (q4) or 8 (q8)
override WX: u32 = 16u;             // threads along weight rows
override WY: u32 = 16u;             // threads along tokens
override ACCUMULATE: bool = false;  // Y += X W^T instead of Y = X W^T

const TR: u32 = 4u;   // weight rows per thread (one vec4 of the weight tile)
const TT: u32 = 2u;   // tokens per thread
const K: u32 = 32u;   // columns per step: one quantization group
override BR: u32 = TR * WX;               // weight rows per tile
override BT: u32 = TT * WY;               // tokens per tile
override WORDS_PER_GROUP: u32 = QBITS;    // u32 words of one row's group: 4 (q4) or 8 (q8)
override VALUES_PER_WORD: u32 = 32u / QBITS;

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

// k-major tiles: w_tile[k][r] (as vec4 over r), x_tile[k][t]. Consecutive threads write consecutive r (or t), and
// the compute loop reads one vec4 of weights per thread and broadcasts the X values: no bank conflicts.
var<workgroup> w_tile: array<vec4<f32>, K * BR / 4u>;
var<workgroup> x_tile: array<f32, K * BT>;

// Unpacks word `word` of group g of chunk row r into tile row lr: tile columns word * VALUES_PER_WORD + j.
fn unpack_word(r: u32, g: u32, word: u32, lr: u32) {
  let grp = r * (params.cols / K) + g;  // the group's index in the chunk
  let w = qweight[grp * WORDS_PER_GROUP + word];
  let k0 = word * VALUES_PER_WORD;
  if (QBITS == 4u) {
    let sm = unpack2x16float(scales[grp]);  // (scale, min)
    for (var j = 0u; j < 8u; j++) {
      let q = f32((w >> (4u * j)) & 0xFu);
      let k = k0 + j;
      w_tile[(k * BR + lr) / 4u][lr % 4u] = sm.x * q + sm.y;
    }
  } else {
    let s = unpack2x16float(scales[grp >> 1u])[grp & 1u];
    for (var j = 0u; j < 4u; j++) {
      let q = f32(bitcast<i32>(w << (24u - 8u * j)) >> 24u);  // sign-extended byte j
      let k = k0 + j;
      w_tile[(k * BR + lr) / 4u][lr % 4u] = s * q;
    }
  }
}

@compute @workgroup_size(WX, WY)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(workgroup_id) wid: vec3<u32>) {
  let r_base = wid.x * BR;
  let t_base = wid.y * BT;
  let groups = params.cols / K;
  var acc: array<vec4<f32>, TT>;
  for (var g = 0u; g < groups; g++) {
    // weight tile: BR rows x WORDS_PER_GROUP words; item -> (row = item % BR, word = item / BR)
    for (var item = li; item < BR * WORDS_PER_GROUP; item += WX * WY) {
      let lr = item % BR;
      let word = item / BR;
      let r = min(r_base + lr, params.rows - 1u);
      unpack_word(r, g, word, lr);
    }
    // X tile: BT tokens x 8 vec4s; item -> (token = item % BT, vec4 = item / BT)
    for (var item = li; item < BT * (K / 4u); item += WX * WY) {
      let lt = item % BT;
      let c4 = item / BT;
      let t = min(t_base + lt, params.tokens - 1u);
      let v = x[t * (params.cols / 4u) + g * (K / 4u) + c4];
      for (var j = 0u; j < 4u; j++) {
        x_tile[(c4 * 4u + j) * BT + lt] = v[j];
      }
    }
    workgroupBarrier();
    for (var k = 0u; k < K; k++) {
      let wv = w_tile[(k * BR) / 4u + lid.x];  // rows lid.x * 4 .. + 3
      for (var j = 0u; j < TT; j++) {
        acc[j] += x_tile[k * BT + lid.y * TT + j] * wv;
      }
    }
    workgroupBarrier();
  }
  for (var j = 0u; j < TT; j++) {
    let t = t_base + lid.y * TT + j;
    for (var i = 0u; i < TR; i++) {
      let r = r_base + lid.x * TR + i;
      if (t < params.tokens && r < params.rows) {
        let o = t * params.y_stride + params.row_offset + r;
        var v = acc[j][i];
        if (ACCUMULATE) {
          v += y[o];
        }
        y[o] = v;
      }
    }
  }
}
