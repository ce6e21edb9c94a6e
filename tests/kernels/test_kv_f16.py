"""kv_f16.wgsl, the KV cache's f16 rounding and packing, bit for bit against model_prep.reference.forward.kv_f16 (what
the reference engine stores with kv_f16 on): ties to even at every exponent, the edges of the flushed subnormal range,
the clamp at 65504, signed zeros, and random f32 bit patterns of every magnitude."""

from __future__ import annotations

import numpy as np

from model_prep.reference.forward import kv_f16

from .gpu import SHADER_DIR, Gpu

WG = 64
# a test entry point over the library: each f32 (read as bits, so nothing can touch it on the way in) through kv_pack
# (two a word) and kv_round, and a word through kv_unpack4 (values 4i .. 4i + 3 from words 2i, 2i + 1)
PROBE = """
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var<storage, read_write> words: array<u32>;
@group(0) @binding(2) var<storage, read_write> rounded: array<u32>;
@group(0) @binding(3) var<storage, read_write> unpacked: array<vec4<u32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (4u * i + 3u >= arrayLength(&x)) {
    return;
  }
  let v = vec4<f32>(bitcast<f32>(x[4u * i]), bitcast<f32>(x[4u * i + 1u]), bitcast<f32>(x[4u * i + 2u]),
                    bitcast<f32>(x[4u * i + 3u]));
  words[2u * i] = kv_pack(v.x, v.y);
  words[2u * i + 1u] = kv_pack(v.z, v.w);
  for (var j = 0u; j < 4u; j++) {
    rounded[4u * i + j] = bitcast<u32>(kv_round(v[j]));
  }
  unpacked[i] = bitcast<vec4<u32>>(kv_unpack4(kv_pack4(v)));
}
"""


def hard_values() -> np.ndarray:
    """f32 values where rounding to f16 is easy to get wrong."""
    f16 = np.arange(0x0400, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)  # every normal f16 > 0
    step = np.ldexp(np.float32(1.0), np.frexp(f16)[1] - 12).astype(np.float32)  # half an f16 ulp at each
    ties = f16 + step  # exactly between two f16s: even mantissas stay, odd ones round up
    near = np.concatenate([np.nextafter(ties, np.float32(0)), np.nextafter(ties, np.float32(np.inf))])
    edges = np.array([
        0.0, 2.0 ** -14, 2.0 ** -14 - 2.0 ** -25, np.nextafter(np.float32(2.0 ** -14 - 2.0 ** -25), np.float32(0)),
        2.0 ** -15, 2.0 ** -24, 2.0 ** -25, 1e-30, 1e-45, 2.0 ** -126, 3e-8, 6.1e-5, 6.2e-5,  # subnormal f16s: flushed
        65504.0, 65505.0, 65519.0, 65519.996, 65520.0, 65536.0, 1e5, 3.4e38, np.inf,  # the clamp
        1.0, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11, 2048.0 + 1.0, 2048.0 + 3.0, 0.1, 1.0 / 3.0,
    ], np.float32)
    values = np.concatenate([f16, ties, near, edges])
    return np.concatenate([values, -values]).astype(np.float32)  # and every one negated (-0.0 included)


def run_probe(gpu: Gpu, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.concatenate([x, np.zeros(-len(x) % 4, np.float32)])
    code = (SHADER_DIR / "kv_f16.wgsl").read_text() + PROBE
    module = gpu.device.create_shader_module(label="kv_f16 probe", code=code)
    pipeline = gpu.device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
    words, rounded, unpacked = gpu.zeros(2 * len(x)), gpu.zeros(4 * len(x)), gpu.zeros(4 * len(x))
    gpu.run(pipeline, [gpu.storage(x.view(np.uint32)), words, rounded, unpacked], (-(-len(x) // (4 * WG)), 1, 1))
    return gpu.read(words, np.uint32), gpu.read(rounded, np.uint32), gpu.read(unpacked, np.uint32)


def expected_words(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kv_f16(x).astype(np.float16)).view(np.uint32)


def test_kv_f16_matches_numpy_bit_for_bit(gpu: Gpu) -> None:
    x = hard_values()
    assert len(x) > 60000
    words, rounded, unpacked = run_probe(gpu, x)
    want = kv_f16(x)
    n = len(x)
    bad = np.flatnonzero(rounded[:n] != want.view(np.uint32))
    assert bad.size == 0, [(float(x[i]), hex(int(rounded[i])), float(want[i])) for i in bad[:8]]
    np.testing.assert_array_equal(words[: n // 2], expected_words(x[: n // 2 * 2]))
    np.testing.assert_array_equal(unpacked[:n], want.view(np.uint32))  # what a reader gets back: the same values


def test_kv_f16_random_bits(gpu: Gpu, rng: np.random.Generator) -> None:
    """Random f32 bit patterns (every exponent, both signs; NaNs left out: the spec does not pin their bits)."""
    bits = rng.integers(0, 2 ** 32, 1 << 18, dtype=np.uint64).astype(np.uint32)
    # half of them with f32 exponents around f16's range (2^-27 .. 2^18), where the rounding does its work
    near = (bits[1 << 17:] & np.uint32(0x807FFFFF)) | (rng.integers(100, 146, 1 << 17).astype(np.uint32) << 23)
    x = np.concatenate([bits[: 1 << 17], near]).view(np.float32)
    x = x[~np.isnan(x)]
    x = x[: len(x) // 4 * 4]
    words, rounded, _ = run_probe(gpu, x)
    np.testing.assert_array_equal(rounded[: len(x)], kv_f16(x).view(np.uint32))
    np.testing.assert_array_equal(words[: len(x) // 2], expected_words(x))
