// argmax.wgsl: greedy decoding under a grammar: the largest logit among the tokens a bitmask allows (ties go to
// the lowest index, as numpy.argmax), and its log-probability under the softmax over the allowed tokens.
//
//   A = {i < n : bit (i % 32) of mask[i / 32] is set}     a mask of all ones allows every token (no constraint)
//   out[0] = k = argmax_{i in A} logits[i]                 0xFFFFFFFF when A is empty (the host must raise, never
//                                                          take it as a token)
//   out[1] = bitcast<u32>(logprob),  logprob = logits[k] - logsumexp_{i in A} logits[i]   (f32, nats, <= 0)
//
// logits are finite or -inf (NaN and +inf are not handled). If every allowed logit is -inf, logprob is
// -log(|A|) (the allowed tokens are then taken as equally likely; numpy's formula would give NaN).
//
// Stable softmax without a second pass over the logits: each thread, then each tree step, keeps a state
// (m, r, k): m the largest allowed logit seen, k its index, and r = sum of exp(l - m) over the other allowed logits
// seen (all but the one at k). Two states merge as the (max, sum) pairs of an online softmax:
//   m = max(m1, m2),  1 + r = (1 + r1) exp(m1 - m) + (1 + r2) exp(m2 - m)
// Keeping r = (sum relative to m) - 1 rather than the sum itself keeps a near-certain token's logprob accurate:
// logprob = -log(1 + r) = -log1p(r), computed from r without rounding 1 + r (p = 0.9999999 gives -1e-7, not 0).
//
// Two ways, same result:
//   main         one workgroup scans all n logits (one dispatch; long vocabularies keep WG threads busy for long)
//   main_blocks  then main_pairs: workgroup b reduces logits b*WG*ITEMS .. +WG*ITEMS - 1 to one state; one
//                workgroup then merges those n_blocks states (two dispatches, the first over the GPU)
//
// Bindings, in order (element counts):
//   main:        0 logits f32[n], 1 mask u32[ceil(n / 32)], 2 out u32[2] (token id, f32 bits of logprob), 3 params
//   main_blocks: 0 logits f32[n], 1 mask u32[ceil(n / 32)], 2 states vec4<u32>[ceil(n / (WG * ITEMS))]
//                (f32 bits of m, f32 bits of r, k, unused), 3 params
//   main_pairs:  0 states vec4<u32>[n] (main_blocks' output; here n = its number of blocks), 2 out u32[2], 3 params
//                (binding 1, the mask, is not used: main_blocks has applied it)
//
// Dispatch: main and main_pairs (1, 1, 1): one workgroup of WG threads; main_blocks (ceil(n / (WG * ITEMS)), 1, 1).
// Each thread scans its elements in increasing index order (consecutive threads read consecutive logits, so the 32
// threads that share a mask word read it together: one extra load per 32 logits); a tree reduction then merges
// the WG states. Disallowed logits are never read and cost no exp.

override WG: u32 = 256u;   // threads; a power of two
override ITEMS: u32 = 8u;  // main_blocks: logits per thread (a block is WG * ITEMS logits)

const NONE: u32 = 0xFFFFFFFFu;      // no allowed element seen (and out[0] when no token is allowed)
const NEG_INF: u32 = 0xFF800000u;   // f32 bits of -inf (out[1] when no token is allowed)

struct Params {
  n: u32,  // values scanned, >= 1: logits (main, main_blocks) or block states (main_pairs)
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;
// main_blocks
@group(0) @binding(2) var<storage, read_write> states_out: array<vec4<u32>>;
// main_pairs
@group(0) @binding(0) var<storage, read> states_in: array<vec4<u32>>;

struct Best {
  m: f32,  // largest allowed logit seen
  r: f32,  // sum of exp(l - m) over the other allowed logits seen (all but the one at k), >= 0
  k: u32,  // index of m, the lowest on a tie; NONE: nothing seen (m and r are then meaningless)
}

const EMPTY = Best(0.0, 0.0, NONE);

var<workgroup> wg_m: array<f32, WG>;
var<workgroup> wg_r: array<f32, WG>;
var<workgroup> wg_k: array<u32, WG>;

fn merge(a: Best, b: Best) -> Best {
  if (b.k == NONE) {
    return a;
  }
  if (a.k == NONE) {
    return b;
  }
  if (a.m == b.m) {  // also two -inf maxima (exp(-inf - -inf) would be NaN): each counts as exp(0) = 1
    return Best(a.m, a.r + b.r + 1.0, min(a.k, b.k));
  }
  if (a.m > b.m) {
    return Best(a.m, a.r + (1.0 + b.r) * exp(b.m - a.m), a.k);
  }
  return Best(b.m, b.r + (1.0 + a.r) * exp(a.m - b.m), b.k);
}

// Logit i as a state if the mask allows it, else EMPTY.
fn element(i: u32) -> Best {
  if (((mask[i >> 5u] >> (i & 31u)) & 1u) == 0u) {
    return EMPTY;
  }
  return Best(logits[i], 0.0, i);
}

// Keeps b in slot li, then merges the WG slots; slot 0 ends with the workgroup's state.
fn reduce(li: u32, b: Best) -> Best {
  wg_m[li] = b.m;
  wg_r[li] = b.r;
  wg_k[li] = b.k;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (li < stride) {
      let c = merge(Best(wg_m[li], wg_r[li], wg_k[li]), Best(wg_m[li + stride], wg_r[li + stride], wg_k[li + stride]));
      wg_m[li] = c.m;
      wg_r[li] = c.r;
      wg_k[li] = c.k;
    }
    workgroupBarrier();
  }
  return Best(wg_m[0], wg_r[0], wg_k[0]);
}

// log(1 + x) for x >= 0 to a few f32 ulps relative, also for tiny x (WGSL's log promises only 2^-21 absolute
// error on [0.5, 2]): 2 atanh(z), z = x / (2 + x), by its series below x = 0.5 (z <= 0.2, 7 terms: < 1e-10).
fn log1p(x: f32) -> f32 {
  if (x >= 0.5) {
    return log(1.0 + x);
  }
  let z = x / (2.0 + x);
  let z2 = z * z;
  let s = 1.0 + z2 * (1.0 / 3.0 + z2 * (1.0 / 5.0 + z2 * (1.0 / 7.0 + z2 * (1.0 / 9.0 + z2 * (1.0 / 11.0 +
    z2 * (1.0 / 13.0))))));
  return 2.0 * z * s;
}

// out[0], out[1] from the final state.
fn write_out(b: Best) {
  if (b.k == NONE) {
    out[0] = NONE;
    out[1] = NEG_INF;
    return;
  }
  out[0] = b.k;
  out[1] = bitcast<u32>(-log1p(b.r));
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) li: u32) {
  var b = EMPTY;
  for (var i = li; i < params.n; i += WG) {
    b = merge(b, element(i));
  }
  let best = reduce(li, b);
  if (li == 0u) {
    write_out(best);
  }
}

@compute @workgroup_size(WG)
fn main_blocks(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wid: vec3<u32>) {
  let start = wid.x * WG * ITEMS;
  let end = min(start + WG * ITEMS, params.n);
  var b = EMPTY;
  for (var i = start + li; i < end; i += WG) {
    b = merge(b, element(i));
  }
  let best = reduce(li, b);
  if (li == 0u) {
    states_out[wid.x] = vec4<u32>(bitcast<u32>(best.m), bitcast<u32>(best.r), best.k, 0u);
  }
}

@compute @workgroup_size(WG)
fn main_pairs(@builtin(local_invocation_index) li: u32) {
  var b = EMPTY;
  for (var i = li; i < params.n; i += WG) {
    let s = states_in[i];
    b = merge(b, Best(bitcast<f32>(s.x), bitcast<f32>(s.y), s.z));  // blocks in index order: ties keep the earlier
  }
  let best = reduce(li, b);
  if (li == 0u) {
    write_out(best);
  }
}
