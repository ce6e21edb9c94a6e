// embed_kq.wgsl: embedding lookup from a K-quant table (q4k, q5k, q6k, docs/FORMAT.md), one row chunk at a time.
//
//   out[t, c] = W[ids[t] - row_start, c] * SCALE   for each t < tokens whose id is in [row_start, row_start + rows)
// As embed.wgsl, with the K-quant value of each weight ((d sc) q - dmin m; (d sc) (q - 32), in that order). The
// engine picks the pipeline by the table's storage through KTYPE (4: q4k, 5: q5k, 6: q6k). KTYPE and the decode:
// kquant.wgsl, joined by the loader (kernels.json: "include").
//
// Bindings, in order (element counts):
//   0 ids     u32[tokens]                     token ids (vocabulary rows)
//   1 qweight u32[rows * cols / 8]            plane "qweight" of the chunk
//   2 qhigh   u32[...]                        plane "qhigh" (q5k, q6k); q4k: bind any buffer (qweight), not read
//   3 supers  u32[rows * cols / 256 * 5]      plane "super"
//   4 out     f32[tokens * cols]              embeddings, row-major [tokens, cols]
//   5 params  Params
//
// Dispatch: (ceil(cols / 8 / WG), tokens, 1) workgroups of WG threads; one thread per qweight word (8 values).
// Needs cols % 256 == 0.

override WG: u32 = 64u;     // threads per workgroup
override SCALE: f32 = 1.0;  // every value times it (gemma3: f32(sqrt(hidden)); 1: the value as stored)

struct Params {
  row_start: u32,  // vocabulary row of the chunk's first row
  rows: u32,       // rows in this chunk
  cols: u32,       // embedding width (elements), a multiple of 256
  tokens: u32,     // entries of ids
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> qweight: array<u32>;
@group(0) @binding(2) var<storage, read> qhigh: array<u32>;
@group(0) @binding(3) var<storage, read> supers: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let t = wid.y;
  let words_per_row = params.cols / 8u;
  let word = gid.x;
  if (t >= params.tokens || word >= words_per_row) {
    return;
  }
  let id = ids[t];
  if (id < params.row_start || id - params.row_start >= params.rows) {
    return;  // another chunk's token
  }
  let gw = (id - params.row_start) * words_per_row + word;
  var qh = 0u;
  if (KTYPE != 4u) {
    qh = qhigh[qhigh_index(gw)];
  }
  let h = k_header(gw);
  let sm = k_affine(supers[h.x], supers[h.y], supers[h.z], gw);
  let c = k_codes(qweight[gw], qh, gw);
  let o = t * params.cols + word * 8u;
  for (var j = 0u; j < 4u; j++) {
    out[o + j] = (sm.x * c.a[j] - sm.y) * SCALE;
    out[o + 4u + j] = (sm.x * c.b[j] - sm.y) * SCALE;
  }
}
