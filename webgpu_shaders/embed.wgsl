// embed.wgsl: embedding lookup from a q4 or q8 table, one row chunk at a time.
//
//   out[t, c] = W[ids[t] - row_start, c] * SCALE   for each t < tokens whose id is in [row_start, row_start + rows)
// Token ids come from a storage buffer (written by the host or by argmax.wgsl), so decode needs no per-token uniform
// write. A table split into row chunks is looked up by one dispatch per chunk; each writes only its own tokens.
// The engine picks the pipeline by the table's storage through QBITS (4: q4, 8: q8).
//
// Bindings, in order (element counts):
//   0 ids     u32[tokens]                     token ids (vocabulary rows)
//   1 qweight u32[rows * cols * QBITS / 32]   plane "qweight" of the chunk (docs/FORMAT.md)
//   2 scales  u32[...]                        plane "scales"
//   3 out     f32[tokens * cols]              embeddings, row-major [tokens, cols]
//   4 params  Params
//
// Dispatch: (ceil(cols * QBITS / 32 / WG), tokens, 1) workgroups of WG threads; one thread per qweight word
// (8 values for q4, 4 for q8). Needs cols % 32 == 0.

override QBITS: u32 = 4u;  // bits per weight: 4 (q4) or 8 (q8)
override WG: u32 = 64u;    // threads per workgroup
override SCALE: f32 = 1.0;  // every value times it (gemma3: f32(sqrt(hidden)); 1: the value as stored)

struct Params {
  row_start: u32,  // vocabulary row of the chunk's first row
  rows: u32,       // rows in this chunk
  cols: u32,       // embedding width (elements), a multiple of 32
  tokens: u32,     // entries of ids
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> qweight: array<u32>;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = wid.y;
  let words_per_row = params.cols * QBITS / 32u;
  let word = gid.x;
  if (t >= params.tokens || word >= words_per_row) {
    return;
  }
  let id = ids[t];
  if (id < params.row_start || id - params.row_start >= params.rows) {
    return;  // another chunk's token
  }
  let r = id - params.row_start;
  let w = qweight[r * words_per_row + word];
  let values = 32u / QBITS;                 // per word
  let c0 = word * values;                   // first column of this word
  let grp = r * (params.cols / 32u) + c0 / 32u;
  let o = t * params.cols + c0;
  if (QBITS == 4u) {
    let sm = unpack2x16float(scales[grp]);  // (scale, min)
    for (var j = 0u; j < 8u; j++) {
      out[o + j] = (sm.x * f32((w >> (4u * j)) & 0xFu) + sm.y) * SCALE;
    }
  } else {
    let s = unpack2x16float(scales[grp >> 1u])[grp & 1u];
    for (var j = 0u; j < 4u; j++) {
      out[o + j] = s * f32(bitcast<i32>(w << (24u - 8u * j)) >> 24u) * SCALE;  // sign-extended byte j
    }
  }
}
