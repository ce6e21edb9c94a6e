// kv_f16.wgsl: the KV cache's f16 storage (issue 10), shared by the kernels that write the cache (rope_table.wgsl,
// attention_split.wgsl) and those that read it (attention.wgsl, attention_split.wgsl, attention_prefill.wgsl). Not a
// kernel: a library of functions, which the loaders put before each kernel whose kernels.json entry lists it in
// "include" (app/engine/gpu/kernels.js shaderSource, tests/kernels/gpu.py shader_source).
//
// A cache holds f16 values packed two per u32 (element 2j in the low 16 bits of word j, 2j + 1 in the high), so a row
// of d values is d / 2 words and a vec4 of it is a vec2<u32>. A cached f32 v becomes the f16 bits
//   clamp v to [-65504, 65504];  round to the nearest f16, ties to even;  a result of magnitude below 2^-14 (an f16
//   subnormal) becomes a zero of v's sign (NaN stays NaN)
// in integer arithmetic here, bit for bit as model_prep/reference/forward.py kv_f16 (numpy), since WGSL leaves
// pack2x16float's rounding direction open; and no subnormal is ever stored, since unpack2x16float may flush them.
// unpack2x16float turns each stored (normal or zero) f16 back into its exact f32 value. Accumulation stays f32.

// The f16 bits (low 16 of the u32) the cache stores for v.
fn kv_f16(v: f32) -> u32 {
  let x = bitcast<u32>(v);
  let sign = (x >> 16u) & 0x8000u;
  let mag = x & 0x7fffffffu;
  if (mag > 0x7f800000u) {
    return sign | 0x7e00u;  // NaN
  }
  if (mag >= 0x477fe000u) {
    return sign | 0x7bffu;  // 65504 and above (infinity too): clamped to f16's largest, 65504
  }
  if (mag < 0x38800000u) {
    // below 2^-14: an f16 subnormal or zero after rounding (flushed), except from 2^-14 - 2^-25 (the tie between the
    // largest subnormal, odd, and 2^-14, even) up, which rounds to 2^-14
    return sign | select(0u, 0x0400u, mag >= 0x387fe000u);
  }
  // normal: rebias the exponent (127 -> 15) and keep 10 of the 23 mantissa bits, rounding the 13 dropped ones to
  // nearest, ties to even; a carry out of the mantissa steps the exponent up, as it should (never to infinity: 65504
  // is exact and every value below it rounds to at most 65504)
  let base = mag - 0x38000000u;  // (112 << 23)
  let h = base >> 13u;
  let rest = base & 0x1fffu;
  let up = rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u);
  return sign | (h + select(0u, 1u, up));
}

// Two values as one cache word: a in the low half (the even element), b in the high.
fn kv_pack(a: f32, b: f32) -> u32 {
  return kv_f16(a) | (kv_f16(b) << 16u);
}

// The f32 value the cache gives back for v.
fn kv_round(v: f32) -> f32 {
  return unpack2x16float(kv_f16(v)).x;
}

// Four values as two cache words (a vec4 of a row), and back.
fn kv_pack4(v: vec4<f32>) -> vec2<u32> {
  return vec2<u32>(kv_pack(v.x, v.y), kv_pack(v.z, v.w));
}

fn kv_unpack4(w: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}
