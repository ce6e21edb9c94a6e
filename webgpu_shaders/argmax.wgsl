// argmax.wgsl: greedy sampling, the index of the largest logit (ties go to the lowest index, as numpy.argmax).
//
//   out[0] = argmax_i logits[i]      i < n; logits are finite or -inf (NaN is not handled)
//
// Two ways, same result:
//   main         one workgroup scans all n logits (one dispatch; long vocabularies keep WG threads busy for long)
//   main_blocks  then main_pairs: workgroup b finds the best (value, index) of logits b*WG*ITEMS .. +WG*ITEMS - 1;
//                one workgroup then picks the best of those n_blocks pairs (two dispatches, the first over the GPU)
//
// Bindings, in order (element counts):
//   main:        0 logits f32[n], 1 out u32[1] (the token id), 2 params
//   main_blocks: 0 logits f32[n], 1 pairs vec2<u32>[ceil(n / (WG * ITEMS))] (bitcast value, index), 2 params
//   main_pairs:  0 pairs vec2<u32>[n] (main_blocks' output; here n = its number of blocks), 1 out u32[1], 2 params
//
// Dispatch: main and main_pairs (1, 1, 1): one workgroup of WG threads; main_blocks (ceil(n / (WG * ITEMS)), 1, 1).
// Each thread scans its elements in increasing index order keeping its first maximum; a tree reduction then keeps
// the larger value, or the lower index on a tie.

override WG: u32 = 256u;   // threads; a power of two
override ITEMS: u32 = 8u;  // main_blocks: logits per thread (a block is WG * ITEMS logits)

const NONE: u32 = 0xFFFFFFFFu;  // no element seen

struct Params {
  n: u32,  // values scanned, >= 1: logits (main, main_blocks) or blocks (main_pairs)
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;
// main_blocks
@group(0) @binding(1) var<storage, read_write> pairs_out: array<vec2<u32>>;
// main_pairs
@group(0) @binding(0) var<storage, read> pairs_in: array<vec2<u32>>;

var<workgroup> best_value: array<f32, WG>;
var<workgroup> best_index: array<u32, WG>;

// Keeps (v, k) in slot li, then reduces the WG slots; slot 0 ends with the winner (index NONE if nothing was seen).
fn reduce_best(li: u32, v: f32, k: u32) {
  best_value[li] = v;
  best_index[li] = k;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      let ov = best_value[li + stride];
      let ok = best_index[li + stride];
      // an empty slot never wins
      if (ok != NONE && (best_index[li] == NONE || ov > best_value[li] ||
                         (ov == best_value[li] && ok < best_index[li]))) {
        best_value[li] = ov;
        best_index[li] = ok;
      }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32) {
  var v = 0.0;  // set by the first element this thread sees
  var k = NONE;
  for (var i = li; i < params.n; i += WG) {
    let l = logits[i];
    if (l > v || k == NONE) {  // the first element seen always counts (so all -inf still gives an index)
      v = l;
      k = i;
    }
  }
  reduce_best(li, v, k);
  if (li == 0u) {
    out[0] = best_index[0];
  }
}

@compute @workgroup_size(WG)
fn main_blocks(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let start = wid.x * WG * ITEMS;
  let end = min(start + WG * ITEMS, params.n);
  var v = 0.0;
  var k = NONE;
  for (var i = start + li; i < end; i += WG) {
    let l = logits[i];
    if (l > v || k == NONE) {
      v = l;
      k = i;
    }
  }
  reduce_best(li, v, k);
  if (li == 0u) {
    pairs_out[wid.x] = vec2<u32>(bitcast<u32>(best_value[0]), best_index[0]);
  }
}

@compute @workgroup_size(WG)
fn main_pairs(@builtin(local_invocation_index) li: u32) {
  var v = 0.0;
  var k = NONE;
  for (var i = li; i < params.n; i += WG) {
    let pr = pairs_in[i];
    let l = bitcast<f32>(pr.x);
    if (l > v || k == NONE) {  // blocks come in index order: a tie keeps the earlier block
      v = l;
      k = pr.y;
    }
  }
  reduce_best(li, v, k);
  if (li == 0u) {
    out[0] = best_index[0];
  }
}
