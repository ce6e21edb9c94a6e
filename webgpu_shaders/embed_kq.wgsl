// embed_kq.wgsl: embedding lookup from a K-quant table (q4k, q5k, q6k, docs/FORMAT.md), one row chunk at a time.
//
//   out[t, c] = W[ids[t] - row_start, c] * SCALE   for each t < tokens whose id is in [row_start, row_start + rows)
// As embed.wgsl, with the K-quant value of each weight ((d sc) q - dmin m; (d sc) (q - 32), in that order). The
// engine picks the pipeline by the table's storage through KTYPE (4: q4k, 5: q5k, 6: q6k).
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

override KTYPE: u32 = 4u;  // 4: q4k, 5: q5k, 6: q6k
override WG: u32 = 64u;    // threads per workgroup
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

struct Codes {
  a: vec4<f32>,  // codes of elements 0..3 of the word (q6k: q - 32)
  b: vec4<f32>,  // elements 4..7
}

// The codes of qweight word gw (its value w) and qh, the qhigh word holding its high bits (q5k: word gw / 4, q6k:
// word gw / 2; unused by q4k). Exact small integers in f32.
fn k_codes(w: u32, qh: u32, gw: u32) -> Codes {
  let s4 = vec4<u32>(0u, 4u, 8u, 12u);
  var a = (vec4<u32>(w) >> s4) & vec4<u32>(0xFu);
  var b = (vec4<u32>(w >> 16u) >> s4) & vec4<u32>(0xFu);
  if (KTYPE == 5u) {
    let bits = vec4<u32>(qh >> (8u * (gw & 3u)));  // bit k: element k's bit 4
    a |= ((bits >> vec4<u32>(0u, 1u, 2u, 3u)) & vec4<u32>(1u)) << vec4<u32>(4u);
    b |= ((bits >> vec4<u32>(4u, 5u, 6u, 7u)) & vec4<u32>(1u)) << vec4<u32>(4u);
  } else if (KTYPE == 6u) {
    let bits = vec4<u32>(qh >> (16u * (gw & 1u)));  // bits 2k, 2k + 1: element k's bits 4, 5
    a |= ((bits >> vec4<u32>(0u, 2u, 4u, 6u)) & vec4<u32>(3u)) << vec4<u32>(4u);
    b |= ((bits >> vec4<u32>(8u, 10u, 12u, 14u)) & vec4<u32>(3u)) << vec4<u32>(4u);
  }
  // to f32 by the exponent trick: bitcast(0x4B000000 | n) = 2^23 + n exactly (n < 2^23), so one OR and one
  // subtraction per value instead of an int-to-float conversion (quarter-rate or slower on some GPUs); q6k's - 32
  // folds into the subtraction (exact: small integers)
  let bias = select(8388608.0, 8388640.0, KTYPE == 6u);  // 2^23 (+ 32 for q6k)
  var c: Codes;
  c.a = bitcast<vec4<f32>>(a | vec4<u32>(0x4B000000u)) - bias;
  c.b = bitcast<vec4<f32>>(b | vec4<u32>(0x4B000000u)) - bias;
  return c;
}

// The f16 in the low 16 bits of h as f32, subnormals included (Q6_K's d is often one; unpack2x16float may flush
// them to zero on some GPUs).
fn f16_value(h: u32) -> f32 {
  let e = (h >> 10u) & 0x1Fu;
  let sign = (h & 0x8000u) << 16u;
  if (e == 0u) {
    let v = f32(h & 0x3FFu) * 5.9604644775390625e-8;  // mantissa * 2^-24, exact
    return bitcast<f32>(bitcast<u32>(v) | sign);
  }
  return bitcast<f32>(sign | ((e + 112u) << 23u) | ((h & 0x3FFu) << 13u));  // no inf / NaN in valid blocks
}

// (scale, offset) of word gw's sub-block: value = scale * code - offset. h0, hs, hm: the super-block's header word 0
// (f16 d, dmin), the word holding the sub-block's scale byte, and (q4k, q5k) the word holding its min byte.
fn k_affine(h0: u32, hs: u32, hm: u32, gw: u32) -> vec2<f32> {
  if (KTYPE == 6u) {
    let j = (gw >> 1u) & 15u;
    let sc = f32(extractBits(bitcast<i32>(hs), 8u * (j & 3u), 8u));  // signed byte
    return vec2<f32>(f16_value(h0) * sc, 0.0);
  }
  let j = (gw >> 2u) & 7u;
  let dm = vec2<f32>(f16_value(h0), f16_value(h0 >> 16u));
  let sc = f32(extractBits(hs, 8u * (j & 3u), 8u));
  let m = f32(extractBits(hm, 8u * (j & 3u), 8u));
  return vec2<f32>(dm.x * sc, dm.y * m);
}

// Header word indices of word gw's super-block (5 words each; the super-block is gw / 32 since a row has cols / 8 =
// 32 * (cols / 256) words): word 0, the scale word, the min word.
fn k_header(gw: u32) -> vec3<u32> {
  let h = 5u * (gw >> 5u);
  if (KTYPE == 6u) {
    return vec3<u32>(h, h + 1u + (((gw >> 1u) & 15u) >> 2u), h);
  }
  let j = (gw >> 2u) & 7u;
  return vec3<u32>(h, h + 1u + (j >> 2u), h + 3u + (j >> 2u));
}

fn qhigh_index(gw: u32) -> u32 {
  return select(gw >> 1u, gw >> 2u, KTYPE == 5u);
}

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
