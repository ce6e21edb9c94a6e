// fma_peak.wgsl: the f32 multiply-add rate a WGSL kernel reaches on this adapter, the compute bound the prefill
// matmuls are judged against (scripts/bench_node.mjs fmaPeak), not an engine kernel. Each invocation runs 8
// independent chains of vec4 FMAs (32 scalar chains, enough to hide the FMA latency), ITERS steps each, all in
// registers: no memory traffic but one 16-byte store per invocation at the end, so the work cannot be dead code.
// c <- c * a + b with a = 1 - 2^-20 and b small keeps every value finite and normal whatever ITERS is.
// Bindings: sink = vec4<f32>[any] (written at gid % length), coef = (a, b, _, _).
// Grid: any 1-D count of workgroups of WG invocations; flops = 2 * 32 * ITERS per invocation.

override WG: u32 = 256u;
override ITERS: u32 = 1024u;

@group(0) @binding(0) var<storage, read_write> sink: array<vec4<f32>>;
@group(0) @binding(1) var<uniform> coef: vec4<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let a = vec4<f32>(coef.x);
  let b = vec4<f32>(coef.y);
  let s = f32(gid.x & 1023u) * 1e-3;
  var c0 = vec4<f32>(s, s + 0.1, s + 0.2, s + 0.3);
  var c1 = c0 + 1.0;
  var c2 = c0 + 2.0;
  var c3 = c0 + 3.0;
  var c4 = c0 + 4.0;
  var c5 = c0 + 5.0;
  var c6 = c0 + 6.0;
  var c7 = c0 + 7.0;
  for (var i = 0u; i < ITERS; i++) {
    c0 = fma(c0, a, b);
    c1 = fma(c1, a, b);
    c2 = fma(c2, a, b);
    c3 = fma(c3, a, b);
    c4 = fma(c4, a, b);
    c5 = fma(c5, a, b);
    c6 = fma(c6, a, b);
    c7 = fma(c7, a, b);
  }
  sink[gid.x % arrayLength(&sink)] = ((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7));
}
