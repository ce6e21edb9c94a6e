// matmul_f32.wgsl: prefill matrix product with one row chunk of an f32 weight (matmul.wgsl's twin for storage f32).
//
//   Y[t, row_offset + r] = sum_c X[t, c] * W[r, c]      t < tokens, r < rows (the chunk's rows), c < cols
//   (Y[t, ...] += ... when ACCUMULATE: the residual add of o_proj and ffn_down fused into the epilogue)
// Same Params and meaning as matmul.wgsl; the weight has one plane ("data") instead of qweight + scales.
//
// Bindings, in order (element counts):
//   0 w       f32[rows * cols]        plane "data" of the chunk
//   1 x       f32[tokens * cols]      X, row-major [tokens, cols]
//   2 y       f32[tokens * y_stride]  Y, row-major [tokens, y_stride]; this chunk fills its rows' columns
//   3 params  Params
//
// Dispatch: (ceil(rows / T), ceil(tokens / T), 1) workgroups of T x T threads (T = TILE). A workgroup owns a tile
// of T weight rows by T tokens; per step of T columns it stages both operands in workgroup memory and each thread
// accumulates one output. Any cols >= 1.

override TILE: u32 = 16u;           // weight rows = tokens = columns per step of a tile
override ACCUMULATE: bool = false;  // Y += X W^T instead of Y = X W^T

struct Params {
  rows: u32,        // rows of this chunk, >= 1
  cols: u32,        // input features
  row_offset: u32,  // column of Y (element within a Y row) of the chunk's first row
  tokens: u32,      // rows of X and Y, >= 1
  y_stride: u32,    // elements per Y row (all chunks' rows together)
}

@group(0) @binding(0) var<storage, read> w: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

// [k][row] and [k][token], padded by one so that the column reads of the compute loop spread over banks
var<workgroup> w_tile: array<f32, TILE * (TILE + 1u)>;
var<workgroup> x_tile: array<f32, TILE * (TILE + 1u)>;

@compute @workgroup_size(TILE, TILE)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let r_base = wid.x * TILE;
  let t_base = wid.y * TILE;
  let cols = params.cols;
  var acc = 0.0;
  for (var c0 = 0u; c0 < cols; c0 += TILE) {
    // thread (lid.x, lid.y) loads column c0 + lid.x of weight row r_base + lid.y and of token t_base + lid.y
    let c = c0 + lid.x;
    let wr = min(r_base + lid.y, params.rows - 1u);
    let xt = min(t_base + lid.y, params.tokens - 1u);
    var wv = 0.0;
    var xv = 0.0;
    if (c < cols) {
      wv = w[wr * cols + c];
      xv = x[xt * cols + c];
    }
    w_tile[lid.x * (TILE + 1u) + lid.y] = wv;
    x_tile[lid.x * (TILE + 1u) + lid.y] = xv;
    workgroupBarrier();
    for (var k = 0u; k < TILE; k++) {
      acc += w_tile[k * (TILE + 1u) + lid.x] * x_tile[k * (TILE + 1u) + lid.y];
    }
    workgroupBarrier();
  }
  let r = r_base + lid.x;
  let t = t_base + lid.y;
  if (r < params.rows && t < params.tokens) {
    let o = t * params.y_stride + params.row_offset + r;
    var v = acc;
    if (ACCUMULATE) {
      v += y[o];
    }
    y[o] = v;
  }
}
