// argmax.wgsl: greedy sampling, the index of the largest logit (ties go to the lowest index, as numpy.argmax).
//
//   out[0] = argmax_i logits[i]      i < n; logits are finite or -inf (NaN is not handled)
//
// Bindings, in order (element counts):
//   0 logits  f32[n]
//   1 out     u32[1]   the token id; embed.wgsl can read it directly for the next step
//   2 params  Params
//
// Dispatch: (1, 1, 1): one workgroup of WG threads. Each thread scans i = li, li + WG, ... keeping its first
// maximum; a tree reduction then keeps the larger value, or the lower index on a tie.

override WG: u32 = 256u;  // threads; a power of two

struct Params {
  n: u32,  // logits, >= 1
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

var<workgroup> best_value: array<f32, WG>;
var<workgroup> best_index: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32) {
  var v = 0.0;         // set by the first element this thread sees
  var k = 0xFFFFFFFFu;  // none seen yet
  for (var i = li; i < params.n; i += WG) {
    let l = logits[i];
    if (l > v || k == 0xFFFFFFFFu) {  // the first element seen always counts (so all -inf still gives an index)
      v = l;
      k = i;
    }
  }
  best_value[li] = v;
  best_index[li] = k;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      let ov = best_value[li + stride];
      let ok = best_index[li + stride];
      // an empty slot (index 0xFFFFFFFF, only when n < WG) never wins
      if (ok != 0xFFFFFFFFu && (best_index[li] == 0xFFFFFFFFu || ov > best_value[li] ||
                                (ov == best_value[li] && ok < best_index[li]))) {
        best_value[li] = ov;
        best_index[li] = ok;
      }
    }
    workgroupBarrier();
  }
  if (li == 0u) {
    out[0] = best_index[0];
  }
}
