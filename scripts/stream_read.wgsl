// stream_read.wgsl: the DRAM read bound of the benchmarks (scripts/bench_engine.mjs, scripts/bench_kernels.py), not
// an engine kernel. Each invocation XORs 16-byte words at a grid stride, so neighbouring invocations read neighbouring
// words (coalesced); the result is stored only when it equals a value zero-filled memory never gives, so no load is
// dead code. Bindings: src = the buffer streamed (bytes a multiple of 16), sink = 1 KiB never read.
// Grid: any 1-D count of workgroups (the benchmarks use 8192 of 256 invocations).

@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> sink: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let n = arrayLength(&src);
  let stride = groups.x * 256u;
  var acc = vec4<u32>(0u);
  for (var i = gid.x; i < n; i += stride) {
    acc ^= src[i];
  }
  let r = acc.x ^ acc.y ^ acc.z ^ acc.w;
  if (r == 0x9e3779b9u) {
    sink[gid.x & 255u] = r;
  }
}
