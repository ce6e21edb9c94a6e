// embed_f32.wgsl: embedding lookup from an f32 table, one row chunk at a time (embed.wgsl's twin for storage f32).
//
//   out[t, c] = W[ids[t] - row_start, c] * SCALE   for each t < tokens whose id is in [row_start, row_start + rows)
// Same Params and the same chunk rule as embed.wgsl; the table has one plane ("data") instead of qweight + scales.
// Token ids come from a storage buffer (written by the host or by argmax.wgsl).
//
// Bindings, in order (element counts):
//   0 ids     u32[tokens]         token ids (vocabulary rows)
//   1 data    f32[rows * cols]    plane "data" of the chunk (docs/FORMAT.md)
//   2 out     f32[tokens * cols]  embeddings, row-major [tokens, cols]
//   3 params  Params
//
// Dispatch: (ceil(cols / WG), tokens, 1) workgroups of WG threads; one thread per element. Any cols.

override WG: u32 = 64u;  // threads per workgroup
override SCALE: f32 = 1.0;  // every value times it (gemma3: f32(sqrt(hidden)); 1: the value as stored)

struct Params {
  row_start: u32,  // vocabulary row of the chunk's first row
  rows: u32,       // rows in this chunk
  cols: u32,       // embedding width (elements)
  tokens: u32,     // entries of ids
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> data: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = wid.y;
  let c = gid.x;
  if (t >= params.tokens || c >= params.cols) {
    return;
  }
  let id = ids[t];
  if (id < params.row_start || id - params.row_start >= params.rows) {
    return;  // another chunk's token
  }
  out[t * params.cols + c] = data[(id - params.row_start) * params.cols + c] * SCALE;
}
