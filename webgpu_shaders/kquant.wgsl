// kquant.wgsl: the K-quant decode (q4k, q5k, q6k: llama.cpp's Q4_K, Q5_K, Q6_K carried exactly, docs/FORMAT.md)
// shared by matvec_kq.wgsl, matmul_kq.wgsl and embed_kq.wgsl. Not a kernel: a library of functions and the override
// they read, which the loaders put before each kernel whose kernels.json entry lists it in "include" (WGSL has no
// #include: app/engine/gpu/kernels.js shaderSource, tests/kernels/gpu.py shader_source). It binds nothing: each
// kernel reads its own planes (qweight, qhigh, supers) and passes the words in.
//
// Value of element c of a row (super-block of 256 columns, sub-block j of 32 (q4k, q5k) or 16 (q6k) columns):
//   q4k, q5k  (d sc[j]) q - dmin m[j]    q = 4-bit code (q4k), low 4 bits + 16 * qhigh bit (q5k)
//   q6k       (d sc[j]) (q - 32)         q = low 4 bits + 16 * two qhigh bits; sc[j] signed
// A super-block's header is 5 words of plane "super"; gw below is a word index into plane "qweight" (8 columns).

override KTYPE: u32 = 4u;  // 4: q4k, 5: q5k, 6: q6k (the engine compiles one pipeline per storage)

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
