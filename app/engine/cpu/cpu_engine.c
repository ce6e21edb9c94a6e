/* cpu_engine.c: the transformer on the CPU, read top to bottom like llama2.c's run.c: config -> weights (the
 * package's planes, unchanged) -> run state (allocated once) -> forward(ids, pos).
 *
 * The math and its order are model_prep/reference/forward.py's `forward`, in f32 (greedy ids must equal the
 * reference's): rmsnorm as (x / sqrt(mean(x^2) + eps)) * w, rope on f32 cos/sin tables, attention scores divided by
 * sqrt(D), softmax as exp(s - max) / sum, silu as x / (1 + exp(-x)); Gemma 3's options (fe_options: scaled
 * embedding, post-norms, gelu_tanh, attention scale, sliding-window layers with their own RoPE tables) where the
 * config has them. Weights are never dequantized into memory: the matmul kernels unpack q4 / q8 groups and the
 * K-quants' super-blocks (q4k / q5k / q6k) in registers. A q4 group's contribution to a dot product is computed as
 *   sum_i (s q_i + m) x_i  =  s * sum_i q_i x_i  +  m * sum_i x_i
 * with sum_i x_i precomputed once per input vector and group (the same for every row), so a q4 value costs a shift,
 * a mask, a convert and a multiply-add. Accumulation is f32 throughout (a different order than numpy's BLAS: the
 * logits differ from the reference's by ~1e-6 relative).
 *
 * Built for wasm32 + SIMD128 with clang (scripts/build_wasm.sh): no libc, the few helpers (expf, f16 -> f32) are
 * below, the allocator in platform.h. The same file builds natively (app/native/build.py: x86-64, arm64), platform.h
 * mapping the SIMD128 intrinsics onto the compiler's vector extensions. Shapes: T = tokens in this call, H = query
 * heads, KV = key/value heads, D = head_dim, G = H / KV; [a, b] is row-major.
 */
#include "cpu_engine.h"

#include "platform.h" /* EXPORT, the wasm_* SIMD128 intrinsics (natively: vector extensions), fe_alloc */

#define GROUP 32 /* values per quantization group (format.GROUP_SIZE) */
#define SUPER 256 /* values per K-quant super-block (format.K_SUPER): 8 groups */

/* ---------------------------------------------------------------------------------------------------------------
 * helpers: bit casts, f16 -> f32, expf
 */

typedef union { float f; uint32_t u; } Bits;

static inline float f32_from_bits(uint32_t u) { Bits b; b.u = u; return b.f; }
static inline uint32_t bits_from_f32(float f) { Bits b; b.f = f; return b.u; }

/* f16 bits (low 16 bits of h) -> f32, exact for every value: the exponent and mantissa moved into an f32 and scaled
 * by 2^112 (the exponent bias difference) handles normals and subnormals; inf and NaN are rebuilt. */
static inline float f16_to_f32(uint32_t h) {
  uint32_t sign = (h & 0x8000u) << 16, em = h & 0x7fffu;
  float f = f32_from_bits(em << 13) * 0x1p112f;
  if (em >= 0x7c00u) f = f32_from_bits(0x7f800000u | ((em & 0x3ffu) << 13));
  return f32_from_bits(bits_from_f32(f) | sign);
}

/* e^x in f32, within ~1 ulp of numpy's (Cephes' expf: x = k ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial for
 * e^r, times 2^k). Below -87.3 it returns 0 (numpy gives subnormals there, < 1.2e-38: nothing here can tell). */
static float fe_expf(float x) {
  if (x != x) return x;
  if (x > 88.72283935546875f) return f32_from_bits(0x7f800000u);
  if (x < -87.33654022216797f) return 0.0f;
  float kf = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - kf * 0.693359375f;
  r = r - kf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.0f;
  int k = (int)kf; /* -126 .. 128 */
  if (k > 127) return y * 2.0f * f32_from_bits((uint32_t)(127 + 127) << 23);
  return y * f32_from_bits((uint32_t)(k + 127) << 23);
}

/* gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) in the reference's order (forward.py gelu_tanh),
 * tanh(u) = sign(u) (1 - e) / (1 + e) with e = exp(-2|u|) (no overflow; ~1e-7 absolute from numpy's tanh). */
static float gelu_tanh(float x) {
  float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  float e = fe_expf(-2.0f * __builtin_fabsf(u));
  float th = (1.0f - e) / (1.0f + e);
  if (u < 0.0f) th = -th;
  return 0.5f * x * (1.0f + th);
}

/* ---------------------------------------------------------------------------------------------------------------
 * config, weights, run state
 */

typedef struct {
  int32_t vocab, hidden, intermediate, layers, heads, kv_heads, head_dim;
  float rms_eps; /* f32(config.rms_norm_eps), as the reference's np.float32(eps) */
  float attn_div; /* f32(sqrt(head_dim)): attention scores are divided by it */
  int32_t rope_interleaved; /* 1: pairs (2i, 2i+1) (GGUF llama); 0: pairs (i, i + D/2) (HF) */
  int32_t attention_bias; /* q/k/v biases present (qwen2) */
  int32_t qk_norm; /* each q and k head RMS-normed before rope (qwen3; never with attention_bias) */
  int32_t context; /* KV positions allocated */
  int32_t max_tokens; /* tokens per fe_forward call (the host splits longer prompts) */
  /* fe_options (gemma3); zero: the llama behaviour */
  float embedding_scale; /* the embedding row times it on lookup (the tied head reads the raw one) */
  int32_t post_norms; /* attention and MLP outputs RMS-normed before their residual adds */
  int32_t gelu; /* MLP activation: gelu_tanh (else silu) */
  float attn_mul; /* attention scores times it (else divided by attn_div) */
  int32_t sliding_window; /* sliding layers attend to positions p - sliding_window + 1 .. p */
} Config;

/* One row range of a tensor, inside one shard. Rows are counted from row0 for the group numbering (FORMAT.md). */
typedef struct {
  int32_t row0, row1;
  const uint8_t *q; /* q4, q4k, q5k, q6k: u32[rows, cols/8] nibbles; q8: i8[rows, cols]; f32: f32[rows, cols] */
  const uint32_t *s; /* q4: u32 per group (f16 scale | f16 min << 16); q8: f16 per group; q4k / q5k / q6k: 5 u32
                      * per super-block (FORMAT.md); f32: unused */
  const uint32_t *h; /* q5k: u32[rows, cols/32] bit 4 of each code; q6k: u32[rows, cols/16] bits 4-5; else unused */
} Chunk;

typedef struct {
  int32_t storage, rows, cols, nchunks; /* nchunks 0: slot not set */
  Chunk *chunks;
} Tensor;

typedef struct {
  float *x; /* [T, hidden] the residual stream */
  float *xb; /* [T, hidden] rmsnorm(x) * w */
  float *q; /* [T, H*D] */
  float *k; /* [T, KV*D] */
  float *v; /* [T, KV*D] */
  float *att; /* [T, H*D] attention output */
  float *hg; /* [T, intermediate] silu(gate) * up */
  float *hu; /* [T, intermediate] up */
  float *xp; /* [T, max_in] a matmul input with each group's values in q4 order (see prepare) */
  float *gsum; /* [T, max_in / 32] a matmul input's group sums */
  float *scores; /* [context] attention weights of one head */
  float *logits; /* [vocab] the last token's */
  float *k_cache; /* [layers, context, KV, D] after rope */
  float *v_cache; /* [layers, context, KV, D] */
  float *cos, *sin; /* [context, D/2] written by the host */
  float *cos_s, *sin_s; /* [context, D/2] the sliding layers' (fe_options sliding_rope), else 0 */
  int32_t *sliding; /* [layers] 1: a sliding-window layer (written by the host) */
  int32_t *ids; /* [max_tokens] written by the host */
  uint32_t *mask; /* [ceil(vocab / 32)] token bitmask, written by the host */
} State;

static Config cfg;
static Tensor tensors[FE_SLOT_LAYER0 + FE_MAX_LAYERS * FE_PER_LAYER];
static State st;
static int ready;

static int max_i(int a, int b) { return a > b ? a : b; }

#define ALLOC(ptr, count) \
  do { \
    (ptr) = fe_alloc((uint32_t)((uint64_t)(count) * sizeof(*(ptr)))); \
    if (!(ptr)) return FE_ERR_MEMORY; \
  } while (0)

/* Checks the config and allocates the run state. attn_div: f32(sqrt(head_dim)). Returns FE_OK or an error. */
EXPORT(fe_init) int fe_init(int32_t vocab, int32_t hidden, int32_t intermediate, int32_t layers, int32_t heads,
                            int32_t kv_heads, int32_t head_dim, float rms_eps, float attn_div,
                            int32_t rope_interleaved, int32_t attention_bias, int32_t qk_norm, int32_t context,
                            int32_t max_tokens) {
  if (ready) return FE_ERR_STATE;
  if (vocab < 1 || hidden < 1 || intermediate < 1 || layers < 1 || layers > FE_MAX_LAYERS || heads < 1 ||
      kv_heads < 1 || heads % kv_heads || head_dim < 2 || head_dim % 4 || context < 1 || max_tokens < 1 ||
      max_tokens > context || (qk_norm && attention_bias))
    return FE_ERR_CONFIG;
  cfg = (Config){vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, rms_eps, attn_div,
                 rope_interleaved, attention_bias, qk_norm, context, max_tokens, 0.0f, 0, 0, 0.0f, 0};
  int T = max_tokens, hd = heads * head_dim, kvd = kv_heads * head_dim;
  int max_in = max_i(max_i(hidden, intermediate), hd);
  uint64_t kv = (uint64_t)layers * context * kvd;
  ALLOC(st.x, T * hidden);
  ALLOC(st.xb, T * hidden);
  ALLOC(st.q, T * hd);
  ALLOC(st.k, T * kvd);
  ALLOC(st.v, T * kvd);
  ALLOC(st.att, T * hd);
  ALLOC(st.hg, T * intermediate);
  ALLOC(st.hu, T * intermediate);
  ALLOC(st.xp, T * max_in);
  ALLOC(st.gsum, T * (max_in / GROUP + 1));
  ALLOC(st.scores, context);
  ALLOC(st.logits, vocab);
  ALLOC(st.k_cache, kv);
  ALLOC(st.v_cache, kv);
  ALLOC(st.cos, context * (head_dim / 2));
  ALLOC(st.sin, context * (head_dim / 2));
  ALLOC(st.ids, T);
  ALLOC(st.mask, (vocab + 31) / 32);
  ALLOC(st.sliding, layers);
  ready = 1;
  return FE_OK;
}

/* gemma3's options (cpu_engine.h), once, before any tensor is declared. */
EXPORT(fe_options) int fe_options(float embedding_scale, int32_t post_norms, int32_t gelu_tanh, float attention_scale,
                                  int32_t sliding_window, int32_t sliding_rope) {
  if (!ready || st.cos_s) return FE_ERR_STATE;
  if (sliding_window < 0 || embedding_scale != embedding_scale || attention_scale != attention_scale)
    return FE_ERR_CONFIG;
  cfg.embedding_scale = embedding_scale, cfg.post_norms = post_norms != 0, cfg.gelu = gelu_tanh != 0;
  cfg.attn_mul = attention_scale, cfg.sliding_window = sliding_window;
  if (sliding_rope) {
    ALLOC(st.cos_s, cfg.context * (cfg.head_dim / 2));
    ALLOC(st.sin_s, cfg.context * (cfg.head_dim / 2));
  }
  return FE_OK;
}

EXPORT(fe_layer_sliding) int32_t *fe_layer_sliding(void) { return st.sliding; }
EXPORT(fe_rope_cos_sliding) float *fe_rope_cos_sliding(void) { return st.cos_s; }
EXPORT(fe_rope_sin_sliding) float *fe_rope_sin_sliding(void) { return st.sin_s; }

EXPORT(fe_rope_cos) float *fe_rope_cos(void) { return st.cos; }
EXPORT(fe_rope_sin) float *fe_rope_sin(void) { return st.sin; }
EXPORT(fe_ids) int32_t *fe_ids(void) { return st.ids; }
EXPORT(fe_logits) float *fe_logits(void) { return st.logits; }
EXPORT(fe_mask) uint32_t *fe_mask(void) { return st.mask; }

/* Declares tensor `slot`: storage (FE_F32 / FE_Q8 / FE_Q4), [rows, cols] ([1, n] for a vector), nchunks chunks. */
EXPORT(fe_tensor) int fe_tensor(int32_t slot, int32_t storage, int32_t rows, int32_t cols, int32_t nchunks) {
  if (!ready) return FE_ERR_STATE;
  if (slot < 0 || slot >= FE_SLOT_LAYER0 + cfg.layers * FE_PER_LAYER || rows < 1 || cols < 1 || nchunks < 1 ||
      storage < FE_F32 || storage > FE_Q6K || (storage != FE_F32 && cols % GROUP) || (storage >= FE_Q4K && cols % SUPER))
    return FE_ERR_ARGS;
  Tensor *t = &tensors[slot];
  ALLOC(t->chunks, nchunks);
  t->storage = storage, t->rows = rows, t->cols = cols, t->nchunks = nchunks;
  for (int i = 0; i < nchunks; i++) t->chunks[i] = (Chunk){0, 0, 0, 0, 0};
  return FE_OK;
}

/* Points chunk `index` of tensor `slot` (rows row0 .. row1 - 1) at its planes in memory: qweight (or f32 data),
 * scales (q4k / q5k / q6k: super), qhigh (q5k / q6k; 0 for the others). */
EXPORT(fe_chunk) int fe_chunk(int32_t slot, int32_t index, int32_t row0, int32_t row1, const void *qweight_or_data,
                              const void *scales_or_super, const void *qhigh) {
  if (slot < 0 || slot >= FE_SLOT_LAYER0 + cfg.layers * FE_PER_LAYER) return FE_ERR_ARGS;
  Tensor *t = &tensors[slot];
  if (index < 0 || index >= t->nchunks || row0 < 0 || row1 <= row0 || row1 > t->rows) return FE_ERR_ARGS;
  if (!qweight_or_data || (t->storage != FE_F32 && !scales_or_super) ||
      ((t->storage == FE_Q5K || t->storage == FE_Q6K) && !qhigh))
    return FE_ERR_ARGS;
  t->chunks[index] = (Chunk){row0, row1, qweight_or_data, scales_or_super, qhigh};
  return FE_OK;
}

static const Tensor *layer_tensor(int layer, int which) {
  return &tensors[FE_SLOT_LAYER0 + layer * FE_PER_LAYER + which];
}

/* An f32 vector tensor's values (norm weights, biases). */
static const float *vec(const Tensor *t) { return (const float *)t->chunks[0].q; }

/* ---------------------------------------------------------------------------------------------------------------
 * kernels
 */

static inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/* The input of a matmul: x [T, cols] (row-major), and when cols % 32 == 0 its q4-ordered copy and group sums. */
typedef struct {
  const float *x; /* [T, cols] */
  const float *xp; /* [T, cols]: in each group, value 4j + l is x[8l + j] (the order q4 words unpack in) */
  const float *gsum; /* [T, cols / 32]: sum of each group's values */
  int T, cols;
} Input;

/* A q4 group is 4 u32 words; word l holds values 8l .. 8l+7, value 8l + j in bits 4j..4j+3. Loaded as one i32x4,
 * (words >> 4j) & 15 gives values {j, 8+j, 16+j, 24+j}: the input is permuted once to that order so that each
 * shift lines up with four consecutive input floats. */
static Input prepare(const float *x, int T, int cols) {
  Input in = {x, st.xp, st.gsum, T, cols};
  if (cols % GROUP) return in;
  int groups = cols / GROUP;
  for (int t = 0; t < T; t++) {
    const float *xr = x + (size_t)t * cols;
    float *pr = st.xp + (size_t)t * cols;
    for (int g = 0; g < groups; g++) {
      const float *xg = xr + g * GROUP;
      float *pg = pr + g * GROUP;
      float sum = 0.0f;
      for (int l = 0; l < 4; l++)
        for (int j = 0; j < 8; j++) pg[4 * j + l] = xg[8 * l + j];
      for (int i = 0; i < GROUP; i++) sum += xg[i];
      st.gsum[t * groups + g] = sum;
    }
  }
  return in;
}

/* Four f16 values (bits in the low half of each u32 lane) -> f32, as f16_to_f32 (finite values: prepare checks
 * every scale and minimum is finite, FORMAT.md). */
static inline v128_t f16x4_to_f32x4(v128_t h) {
  v128_t em = wasm_v128_and(h, wasm_i32x4_splat(0x7fff));
  v128_t sign = wasm_i32x4_shl(wasm_v128_and(h, wasm_i32x4_splat(0x8000)), 16);
  return wasm_v128_or(wasm_f32x4_mul(wasm_i32x4_shl(em, 13), wasm_f32x4_splat(0x1p112f)), sign);
}

/* The 8 q4 values of each lane of one group's 4 words, as f32: w[j] = values {j, 8+j, 16+j, 24+j}. */
__attribute__((always_inline)) static inline void unpack_q4(v128_t wv, v128_t w[8]) {
  const v128_t low4 = wasm_i32x4_splat(15);
  w[0] = wasm_f32x4_convert_i32x4(wasm_v128_and(wv, low4));
  w[1] = wasm_f32x4_convert_i32x4(wasm_v128_and(wasm_u32x4_shr(wv, 4), low4));
  w[2] = wasm_f32x4_convert_i32x4(wasm_v128_and(wasm_u32x4_shr(wv, 8), low4));
  w[3] = wasm_f32x4_convert_i32x4(wasm_v128_and(wasm_u32x4_shr(wv, 12), low4));
  w[4] = wasm_f32x4_convert_i32x4(wasm_v128_and(wasm_u32x4_shr(wv, 16), low4));
  w[5] = wasm_f32x4_convert_i32x4(wasm_v128_and(wasm_u32x4_shr(wv, 20), low4));
  w[6] = wasm_f32x4_convert_i32x4(wasm_v128_and(wasm_u32x4_shr(wv, 24), low4));
  w[7] = wasm_f32x4_convert_i32x4(wasm_u32x4_shr(wv, 28));
}

/* One q8 group's 32 i8 values as f32, in the q4 order: w[j] = values {j, 8+j, 16+j, 24+j}, so that q8 reads the
 * same permuted input as q4. Words 0, 2, 4, 6 hold values 8l + 0..3 and words 1, 3, 5, 7 values 8l + 4..7; byte k
 * is sign-extended by shifting it to the top and back. (Not i8 -> i16 -> i32 extends in value order: clang 14
 * folds those into a convert from i16 that it then does one lane at a time.) */
__attribute__((always_inline)) static inline void unpack_q8(const int8_t *g, v128_t w[8]) {
  v128_t a = wasm_v128_load(g), b = wasm_v128_load(g + 16);
  v128_t lo = wasm_i32x4_shuffle(a, b, 0, 2, 4, 6), hi = wasm_i32x4_shuffle(a, b, 1, 3, 5, 7);
  w[0] = wasm_f32x4_convert_i32x4(wasm_i32x4_shr(wasm_i32x4_shl(lo, 24), 24));
  w[1] = wasm_f32x4_convert_i32x4(wasm_i32x4_shr(wasm_i32x4_shl(lo, 16), 24));
  w[2] = wasm_f32x4_convert_i32x4(wasm_i32x4_shr(wasm_i32x4_shl(lo, 8), 24));
  w[3] = wasm_f32x4_convert_i32x4(wasm_i32x4_shr(lo, 24));
  w[4] = wasm_f32x4_convert_i32x4(wasm_i32x4_shr(wasm_i32x4_shl(hi, 24), 24));
  w[5] = wasm_f32x4_convert_i32x4(wasm_i32x4_shr(wasm_i32x4_shl(hi, 16), 24));
  w[6] = wasm_f32x4_convert_i32x4(wasm_i32x4_shr(wasm_i32x4_shl(hi, 8), 24));
  w[7] = wasm_f32x4_convert_i32x4(wasm_i32x4_shr(hi, 24));
}

/* sum over 32 values of w * x (four lanes of partial sums): x is the input group in the order w was unpacked in. */
__attribute__((always_inline)) static inline v128_t dot32(const v128_t w[8], const float *x) {
  v128_t p0 = wasm_f32x4_add(wasm_f32x4_mul(w[0], wasm_v128_load(x)), wasm_f32x4_mul(w[1], wasm_v128_load(x + 4)));
  v128_t p1 = wasm_f32x4_add(wasm_f32x4_mul(w[2], wasm_v128_load(x + 8)), wasm_f32x4_mul(w[3], wasm_v128_load(x + 12)));
  v128_t p2 = wasm_f32x4_add(wasm_f32x4_mul(w[4], wasm_v128_load(x + 16)), wasm_f32x4_mul(w[5], wasm_v128_load(x + 20)));
  v128_t p3 = wasm_f32x4_add(wasm_f32x4_mul(w[6], wasm_v128_load(x + 24)), wasm_f32x4_mul(w[7], wasm_v128_load(x + 28)));
  return wasm_f32x4_add(wasm_f32x4_add(p0, p1), wasm_f32x4_add(p2, p3));
}

#define SPLAT_LANE(v, k) wasm_i32x4_shuffle((v), (v), (k), (k), (k), (k))

/* out[t] = dot(row, x[t0 + t]) for NT tokens of one q4 row. `row` is the row's first word, `sc` its first scale
 * word. Groups go four at a time: their scales and minimums decoded in one vector each, the minimums' part
 * (m * sum x) accumulated four groups per multiply. Inlined with NT = 4 (prefill) and NT = 1 (decode, remainders). */
__attribute__((always_inline)) static inline void row_q4(const uint32_t *row, const uint32_t *sc, const Input *in,
                                                        int t0, int NT, float *out) {
  int groups = in->cols / GROUP, g = 0;
  v128_t acc[4] = {wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0)};
  v128_t macc[4] = {wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0)};
  float tail[4] = {0, 0, 0, 0};
  const float *xp[4], *gs[4];
  for (int t = 0; t < NT; t++) {
    xp[t] = in->xp + (size_t)(t0 + t) * in->cols;
    gs[t] = in->gsum + (size_t)(t0 + t) * groups;
  }
  v128_t w[8];
  for (; g + 4 <= groups; g += 4) {
    v128_t sw = wasm_v128_load(sc + g);
    v128_t s = f16x4_to_f32x4(wasm_v128_and(sw, wasm_i32x4_splat(0xffff)));
    v128_t m = f16x4_to_f32x4(wasm_u32x4_shr(sw, 16));
    for (int t = 0; t < NT; t++) macc[t] = wasm_f32x4_add(macc[t], wasm_f32x4_mul(m, wasm_v128_load(gs[t] + g)));
#define Q4_GROUP(k) \
    unpack_q4(wasm_v128_load(row + 4 * (g + k)), w); \
    for (int t = 0; t < NT; t++) \
      acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(dot32(w, xp[t] + (g + k) * GROUP), SPLAT_LANE(s, k)));
    Q4_GROUP(0) Q4_GROUP(1) Q4_GROUP(2) Q4_GROUP(3)
#undef Q4_GROUP
  }
  for (; g < groups; g++) {
    uint32_t sw = sc[g];
    v128_t s = wasm_f32x4_splat(f16_to_f32(sw & 0xffffu));
    float m = f16_to_f32(sw >> 16);
    unpack_q4(wasm_v128_load(row + 4 * g), w);
    for (int t = 0; t < NT; t++) {
      acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(dot32(w, xp[t] + g * GROUP), s));
      tail[t] += m * gs[t][g];
    }
  }
  for (int t = 0; t < NT; t++) out[t] = hsum(acc[t]) + (hsum(macc[t]) + tail[t]);
}

/* q8: the same, a group being 32 i8 (read in the q4 order) and its scale one f16 of a packed sequence. */
__attribute__((always_inline)) static inline void row_q8(const int8_t *row, const uint16_t *sc, const Input *in,
                                                        int t0, int NT, float *out) {
  int groups = in->cols / GROUP, g = 0;
  v128_t acc[4] = {wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0)};
  const float *x[4];
  for (int t = 0; t < NT; t++) x[t] = in->xp + (size_t)(t0 + t) * in->cols;
  v128_t w[8];
  for (; g + 4 <= groups; g += 4) {
    v128_t s = f16x4_to_f32x4(wasm_u32x4_extend_low_u16x8(wasm_v128_load64_zero(sc + g)));
#define Q8_GROUP(k) \
    unpack_q8(row + (g + k) * GROUP, w); \
    for (int t = 0; t < NT; t++) \
      acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(dot32(w, x[t] + (g + k) * GROUP), SPLAT_LANE(s, k)));
    Q8_GROUP(0) Q8_GROUP(1) Q8_GROUP(2) Q8_GROUP(3)
#undef Q8_GROUP
  }
  for (; g < groups; g++) {
    v128_t s = wasm_f32x4_splat(f16_to_f32(sc[g]));
    unpack_q8(row + g * GROUP, w);
    for (int t = 0; t < NT; t++) acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(dot32(w, x[t] + g * GROUP), s));
  }
  for (int t = 0; t < NT; t++) out[t] = hsum(acc[t]);
}

/* K-quants (q4k / q5k / q6k, llama.cpp's Q4_K / Q5_K / Q6_K carried exactly): the codes' low 4 bits are a q4
 * qweight (the same 4-word groups, unpacked as unpack_q4 does, reading the same permuted input); a super-block of 256
 * values (8 groups) has 5 super words: f16 d (and q4k / q5k: f16 dmin), then its sub-blocks' scales (and mins) as
 * bytes. Each super-block's scales and minimums are decoded once, for its 8 groups.
 * q5k: the 4 lanes of w[j] (values j, 8+j, 16+j, 24+j of the group) take bit 4 of their codes from bits j, 8+j,
 * 16+j, 24+j of the group's qhigh word: the word shifted by 4, -4, -12, -20 per lane (hb) puts bit 8l + j of it at
 * bit 4 of (hb >> j) in lane l. */
__attribute__((always_inline)) static inline void unpack_q5(v128_t wv, uint32_t h, v128_t w[8]) {
  const v128_t low4 = wasm_i32x4_splat(15), bit4 = wasm_i32x4_splat(16);
  v128_t hb = wasm_i32x4_make((int32_t)(h << 4), (int32_t)(h >> 4), (int32_t)(h >> 12), (int32_t)(h >> 20));
  for (int j = 0; j < 8; j++)
    w[j] = wasm_f32x4_convert_i32x4(wasm_v128_or(wasm_v128_and(wasm_u32x4_shr(wv, 4 * j), low4),
                                                 wasm_v128_and(wasm_u32x4_shr(hb, j), bit4)));
}

/* q6k: bits 4-5 of value c are bits 2(c%16)..+1 of qhigh word c/16, so a group's values j, 8+j (word h0) and 16+j,
 * 24+j (word h1) read bits 2j and 16 + 2j of their word: hb's lanes put them at bits 4-5 of (hb >> 2j). The codes
 * are 0..63 and the value is scale * (q - 32): the 32 is taken off the integers. */
__attribute__((always_inline)) static inline void unpack_q6(v128_t wv, uint32_t h0, uint32_t h1, v128_t w[8]) {
  const v128_t low4 = wasm_i32x4_splat(15), bits45 = wasm_i32x4_splat(0x30), off = wasm_i32x4_splat(32);
  v128_t hb = wasm_i32x4_make((int32_t)(h0 << 4), (int32_t)(h0 >> 12), (int32_t)(h1 << 4), (int32_t)(h1 >> 12));
  for (int j = 0; j < 8; j++)
    w[j] = wasm_f32x4_convert_i32x4(wasm_i32x4_sub(
        wasm_v128_or(wasm_v128_and(wasm_u32x4_shr(wv, 4 * j), low4), wasm_v128_and(wasm_u32x4_shr(hb, 2 * j), bits45)),
        off));
}

/* q4k / q5k (q5 = 1: with qhigh `high`, one word per group): the value is (d sc[j]) q - (dmin m[j]) for group j of
 * a super-block, so a group adds (d sc[j]) * sum q x - (dmin m[j]) * sum x, as row_q4 with a scale and minimum per
 * group (the minimums' part over a super-block's 8 groups in two multiplies per token). */
__attribute__((always_inline)) static inline void row_k45(const uint32_t *row, const uint32_t *sup,
                                                         const uint32_t *high, const Input *in, int t0, int NT,
                                                         int q5, float *out) {
  int supers = in->cols / SUPER, groups = in->cols / GROUP;
  v128_t acc[4] = {wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0)};
  v128_t macc[4] = {wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0)};
  const float *xp[4], *gs[4];
  for (int t = 0; t < NT; t++) {
    xp[t] = in->xp + (size_t)(t0 + t) * in->cols;
    gs[t] = in->gsum + (size_t)(t0 + t) * groups;
  }
  v128_t w[8];
  for (int s = 0; s < supers; s++) {
    const uint32_t *hd = sup + 5 * s;
    float d = f16_to_f32(hd[0] & 0xffffu), dmin = f16_to_f32(hd[0] >> 16);
    float scale[8], mins[8];
    for (int j = 0; j < 8; j++) {
      scale[j] = d * (float)((hd[1 + j / 4] >> (8 * (j % 4))) & 255u);
      mins[j] = dmin * (float)((hd[3 + j / 4] >> (8 * (j % 4))) & 255u);
    }
    v128_t m0 = wasm_v128_load(mins), m1 = wasm_v128_load(mins + 4);
    for (int t = 0; t < NT; t++)
      macc[t] = wasm_f32x4_add(macc[t], wasm_f32x4_add(wasm_f32x4_mul(m0, wasm_v128_load(gs[t] + 8 * s)),
                                                       wasm_f32x4_mul(m1, wasm_v128_load(gs[t] + 8 * s + 4))));
    for (int k = 0; k < 8; k++) {
      int g = 8 * s + k;
      if (q5) unpack_q5(wasm_v128_load(row + 4 * g), high[g], w); else unpack_q4(wasm_v128_load(row + 4 * g), w);
      v128_t sk = wasm_f32x4_splat(scale[k]);
      for (int t = 0; t < NT; t++) acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(dot32(w, xp[t] + g * GROUP), sk));
    }
  }
  for (int t = 0; t < NT; t++) out[t] = hsum(acc[t]) - hsum(macc[t]);
}

/* q6k: 16 sub-blocks of 16 values, value (d sc[j]) (q - 32) with sc[j] a signed byte. A group of 32 spans two
 * sub-blocks: lanes 0-1 of dot32's partial sums are values 0..15 of the group, lanes 2-3 values 16..31, so the
 * group's two scales multiply them as one vector (s0, s0, s1, s1). */
__attribute__((always_inline)) static inline void row_q6k(const uint32_t *row, const uint32_t *sup,
                                                         const uint32_t *high, const Input *in, int t0, int NT,
                                                         float *out) {
  int supers = in->cols / SUPER;
  v128_t acc[4] = {wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0), wasm_f32x4_splat(0)};
  const float *xp[4];
  for (int t = 0; t < NT; t++) xp[t] = in->xp + (size_t)(t0 + t) * in->cols;
  v128_t w[8];
  for (int s = 0; s < supers; s++) {
    const uint32_t *hd = sup + 5 * s;
    float d = f16_to_f32(hd[0] & 0xffffu);
    float scale[16];
    for (int j = 0; j < 16; j++) scale[j] = d * (float)(int8_t)(uint8_t)(hd[1 + j / 4] >> (8 * (j % 4)));
    for (int k = 0; k < 8; k++) {
      int g = 8 * s + k;
      unpack_q6(wasm_v128_load(row + 4 * g), high[2 * g], high[2 * g + 1], w);
      v128_t pair = wasm_v128_load64_zero(scale + 2 * k);
      v128_t sk = wasm_i32x4_shuffle(pair, pair, 0, 0, 1, 1);
      for (int t = 0; t < NT; t++) acc[t] = wasm_f32x4_add(acc[t], wasm_f32x4_mul(dot32(w, xp[t] + g * GROUP), sk));
    }
  }
  for (int t = 0; t < NT; t++) out[t] = hsum(acc[t]);
}

/* f32: four lanes, then the tail (cols % 4) in scalar. */
static float dot_f32(const float *a, const float *b, int n) {
  v128_t acc = wasm_f32x4_splat(0);
  int i = 0;
  for (; i + 4 <= n; i += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(a + i), wasm_v128_load(b + i)));
  float s = hsum(acc);
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

#ifndef FE_TILE
#define FE_TILE 16 /* tokens per tile: their inputs (16 x 1536 f32 = 96 KiB at most for SmolLM2) stay in cache */
#endif

/* y[t, r] = W[r] . x[t] (accumulate: y[t, r] += it) for rows r0 <= r < r1 of W [rows, cols] and tokens t < in->T.
 * y: [T, ystride]. Tokens in tiles of FE_TILE (outer), then rows, then the tile's tokens in blocks of 4: a row's
 * weights are unpacked once per 4 tokens and read once per tile, and the tile's inputs stay in cache whatever the
 * pass size (on SmolLM2, tiles of 4 to 32 and no tiles measured alike, within the noise of a shared machine). */
static void matmul_rows(const Tensor *w, const Input *in, float *y, int ystride, int accumulate, int r0, int r1) {
  int cols = w->cols, T = in->T;
  float out[4];
  for (int tile = 0; tile < T; tile += FE_TILE) {
    int tile_end = T - tile < FE_TILE ? T : tile + FE_TILE;
    for (int c = 0; c < w->nchunks; c++) {
      const Chunk *ch = &w->chunks[c];
      int first = ch->row0 > r0 ? ch->row0 : r0, end = ch->row1 < r1 ? ch->row1 : r1;
      for (int r = first; r < end; r++) {
        int local = r - ch->row0;
        for (int t0 = tile; t0 < tile_end;) {
          int nt = tile_end - t0 >= 4 ? 4 : 1;
          if (w->storage == FE_Q4) {
            const uint32_t *row = (const uint32_t *)ch->q + (size_t)local * (cols / 8);
            const uint32_t *sc = ch->s + (size_t)local * (cols / GROUP);
#ifdef FE_WIDE /* native x86-64 with AVX2 (platform.h, wide.h): the same on 8 lanes */
            const float *xp = in->xp + (size_t)t0 * cols, *gs = in->gsum + (size_t)t0 * (cols / GROUP);
            (void)row_q4;
            if (nt == 4) fe_wide_q4(row, sc, xp, gs, cols / GROUP, 4, out);
            else fe_wide_q4(row, sc, xp, gs, cols / GROUP, 1, out);
#else
            if (nt == 4) row_q4(row, sc, in, t0, 4, out); else row_q4(row, sc, in, t0, 1, out);
#endif
          } else if (w->storage == FE_Q8) {
            const int8_t *row = (const int8_t *)ch->q + (size_t)local * cols;
            const uint16_t *sc = (const uint16_t *)ch->s + (size_t)local * (cols / GROUP);
#ifdef FE_WIDE
            const float *xp = in->xp + (size_t)t0 * cols;
            (void)row_q8;
            if (nt == 4) fe_wide_q8(row, sc, xp, cols / GROUP, 4, out);
            else fe_wide_q8(row, sc, xp, cols / GROUP, 1, out);
#else
            if (nt == 4) row_q8(row, sc, in, t0, 4, out); else row_q8(row, sc, in, t0, 1, out);
#endif
          } else if (w->storage == FE_Q4K || w->storage == FE_Q5K) {
            const uint32_t *row = (const uint32_t *)ch->q + (size_t)local * (cols / 8);
            const uint32_t *sup = ch->s + (size_t)local * (cols / SUPER) * 5;
#ifdef FE_WIDE
            const float *xp = in->xp + (size_t)t0 * cols, *gs = in->gsum + (size_t)t0 * (cols / GROUP);
            int supers = cols / SUPER;
            (void)row_k45;
            if (w->storage == FE_Q5K) {
              const uint32_t *hi = ch->h + (size_t)local * (cols / 32);
              if (nt == 4) fe_wide_k45(row, sup, hi, xp, gs, supers, 4, 1, out);
              else fe_wide_k45(row, sup, hi, xp, gs, supers, 1, 1, out);
            } else {
              if (nt == 4) fe_wide_k45(row, sup, 0, xp, gs, supers, 4, 0, out);
              else fe_wide_k45(row, sup, 0, xp, gs, supers, 1, 0, out);
            }
#else
            if (w->storage == FE_Q5K) {
              const uint32_t *hi = ch->h + (size_t)local * (cols / 32);
              if (nt == 4) row_k45(row, sup, hi, in, t0, 4, 1, out); else row_k45(row, sup, hi, in, t0, 1, 1, out);
            } else {
              if (nt == 4) row_k45(row, sup, 0, in, t0, 4, 0, out); else row_k45(row, sup, 0, in, t0, 1, 0, out);
            }
#endif
          } else if (w->storage == FE_Q6K) {
            const uint32_t *row = (const uint32_t *)ch->q + (size_t)local * (cols / 8);
            const uint32_t *sup = ch->s + (size_t)local * (cols / SUPER) * 5;
            const uint32_t *hi = ch->h + (size_t)local * (cols / 16);
#ifdef FE_WIDE
            const float *xp = in->xp + (size_t)t0 * cols;
            (void)row_q6k;
            if (nt == 4) fe_wide_q6k(row, sup, hi, xp, cols / SUPER, 4, out);
            else fe_wide_q6k(row, sup, hi, xp, cols / SUPER, 1, out);
#else
            if (nt == 4) row_q6k(row, sup, hi, in, t0, 4, out); else row_q6k(row, sup, hi, in, t0, 1, out);
#endif
          } else {
            const float *row = (const float *)ch->q + (size_t)local * cols;
            for (int t = 0; t < nt; t++) out[t] = dot_f32(row, in->x + (size_t)(t0 + t) * cols, cols);
          }
          for (int t = 0; t < nt; t++) {
            float *dst = &y[(size_t)(t0 + t) * ystride + r];
            *dst = accumulate ? *dst + out[t] : out[t];
          }
          t0 += nt;
        }
      }
    }
  }
}

/* Part `i` of `n` of `count` items: [*a, *b), contiguous, in order, sizes differing by at most 1. */
static void share(int count, int i, int n, int *a, int *b) {
  *a = (int)((int64_t)count * i / n);
  *b = (int)((int64_t)count * (i + 1) / n);
}

/* Part `part` of `parts` of matmul_rows' rows (all of them when parts == 1). Each output element is computed by one
 * part with the same instructions as in one: the result does not depend on how the rows are cut. */
static void matmul(const Tensor *w, const Input *in, float *y, int ystride, int accumulate, int part, int parts) {
  int r0, r1;
  share(w->rows, part, parts, &r0, &r1);
  matmul_rows(w, in, y, ystride, accumulate, r0, r1);
}

/* y [T, rows] = x [T, cols] W^T for tensor `slot`, cut into 3 parts as threads would (the matmul kernels on their
 * own, for tests: x and y in fe_alloc memory, T <= max_tokens, cols <= the widest matmul input of the config). */
EXPORT(fe_matmul) int fe_matmul(int32_t slot, int32_t T, const float *x, float *y) {
  if (!ready) return FE_ERR_STATE;
  if (slot < 0 || slot >= FE_SLOT_LAYER0 + cfg.layers * FE_PER_LAYER || !tensors[slot].nchunks) return FE_ERR_ARGS;
  const Tensor *w = &tensors[slot];
  int max_in = max_i(max_i(cfg.hidden, cfg.intermediate), cfg.heads * cfg.head_dim);
  if (T < 1 || T > cfg.max_tokens || w->cols > max_in) return FE_ERR_ARGS;
  for (int c = 0; c < w->nchunks; c++)
    if (!w->chunks[c].q) return FE_ERR_STATE;
  Input in = prepare(x, T, w->cols);
  for (int part = 0; part < 3; part++) matmul(w, &in, y, w->rows, 0, part, 3);
  return FE_OK;
}

/* out [hidden] = row `id` of the embedding, dequantized as the reference does: f32(scale) * f32(q) + f32(min)
 * (q4k / q5k: (f32(d) * f32(sc)) * f32(q) - f32(dmin) * f32(m); q6k: (f32(d) * f32(sc)) * f32(q - 32)). */
static int embed(const Tensor *w, int id, float *out) {
  int cols = w->cols;
  for (int c = 0; c < w->nchunks; c++) {
    const Chunk *ch = &w->chunks[c];
    if (id < ch->row0 || id >= ch->row1) continue;
    int local = id - ch->row0;
    if (w->storage == FE_Q4) {
      const uint32_t *row = (const uint32_t *)ch->q + (size_t)local * (cols / 8);
      const uint32_t *sc = ch->s + (size_t)local * (cols / GROUP);
      for (int i = 0; i < cols; i++) {
        uint32_t sw = sc[i / GROUP];
        float q = (float)((row[i / 8] >> (4 * (i % 8))) & 15u);
        out[i] = f16_to_f32(sw & 0xffffu) * q + f16_to_f32(sw >> 16);
      }
    } else if (w->storage == FE_Q8) {
      const int8_t *row = (const int8_t *)ch->q + (size_t)local * cols;
      const uint16_t *sc = (const uint16_t *)ch->s + (size_t)local * (cols / GROUP);
      for (int i = 0; i < cols; i++) out[i] = f16_to_f32(sc[i / GROUP]) * (float)row[i];
    } else if (w->storage >= FE_Q4K) {
      const uint32_t *row = (const uint32_t *)ch->q + (size_t)local * (cols / 8);
      const uint32_t *sup = ch->s + (size_t)local * (cols / SUPER) * 5;
      for (int i = 0; i < cols; i++) {
        const uint32_t *hd = sup + 5 * (i / SUPER);
        uint32_t q = (row[i / 8] >> (4 * (i % 8))) & 15u;
        float d = f16_to_f32(hd[0] & 0xffffu);
        if (w->storage == FE_Q6K) {
          q |= ((ch->h[(size_t)local * (cols / 16) + i / 16] >> (2 * (i % 16))) & 3u) << 4;
          int j = (i % SUPER) / 16;
          float sc = (float)(int8_t)(uint8_t)(hd[1 + j / 4] >> (8 * (j % 4)));
          out[i] = (d * sc) * (float)((int)q - 32);
        } else {
          if (w->storage == FE_Q5K) q |= ((ch->h[(size_t)local * (cols / 32) + i / 32] >> (i % 32)) & 1u) << 4;
          int j = (i % SUPER) / 32;
          float sc = (float)((hd[1 + j / 4] >> (8 * (j % 4))) & 255u), m = (float)((hd[3 + j / 4] >> (8 * (j % 4))) & 255u);
          out[i] = (d * sc) * (float)q - f16_to_f32(hd[0] >> 16) * m;
        }
      }
    } else {
      const float *row = (const float *)ch->q + (size_t)local * cols;
      for (int i = 0; i < cols; i++) out[i] = row[i];
    }
    return FE_OK;
  }
  return FE_ERR_ARGS;
}

/* out [n] = (x / sqrt(mean(x^2) + eps)) * w; out may be x (each x[i] is read before out[i] is written) */
static void rmsnorm(float *out, const float *x, const float *w, int n) {
  v128_t acc = wasm_f32x4_splat(0);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(x + i);
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(v, v));
  }
  float ss = hsum(acc);
  for (; i < n; i++) ss += x[i] * x[i];
  float r = __builtin_sqrtf(ss / (float)n + cfg.rms_eps);
  for (i = 0; i < n; i++) out[i] = (x[i] / r) * w[i];
}

/* Rotates each of `heads` vectors of x [heads, D] at one position: pairs (2i, 2i+1) or (i, i + D/2) by the angle
 * whose cos and sin are c[i], s[i] (i < D/2): (a, b) -> (a c - b s, b c + a s). */
static void rope(float *x, int heads, const float *c, const float *s) {
  int d = cfg.head_dim, half = d / 2;
  for (int h = 0; h < heads; h++) {
    float *v = x + h * d;
    for (int i = 0; i < half; i++) {
      int ia = cfg.rope_interleaved ? 2 * i : i, ib = cfg.rope_interleaved ? 2 * i + 1 : i + half;
      float a = v[ia], b = v[ib];
      v[ia] = a * c[i] - b * s[i];
      v[ib] = b * c[i] + a * s[i];
    }
  }
}

/* att [T, H*D] = causal GQA attention of q [T, H*D] (token t at position pos + t) over layer `l`'s cache for
 * positions 0 .. pos + t (a sliding layer: the last sliding_window of them): softmax(q . k / sqrt(D)) . v (or
 * q . k * attention_scale), query head h reading key/value head h / G. Part `part` of `parts` of the (token, head)
 * pairs, run by thread tid with its own scores row. */
static void attention(int l, int T, int pos, int tid, int part, int parts) {
  int d = cfg.head_dim, kvh = cfg.kv_heads, group = cfg.heads / cfg.kv_heads, hd = cfg.heads * d;
  const float *kc = st.k_cache + (size_t)l * cfg.context * kvh * d;
  const float *vc = st.v_cache + (size_t)l * cfg.context * kvh * d;
  float *scores = st.scores + (size_t)tid * cfg.context;
  int window = cfg.sliding_window && st.sliding[l] ? cfg.sliding_window : 0;
  int a, b;
  share(T * cfg.heads, part, parts, &a, &b);
  for (int i = a; i < b; i++) {
    int t = i / cfg.heads, h = i % cfg.heads;
    int len = pos + t + 1, first = window && len > window ? len - window : 0; /* keys first .. len - 1 */
    {
      const float *q = st.q + (size_t)t * hd + h * d;
      int kh = h / group;
      float mx = -__builtin_inff();
      for (int s = first; s < len; s++) {
        float dot = dot_f32(q, kc + ((size_t)s * kvh + kh) * d, d);
        float sc = cfg.attn_mul != 0.0f ? dot * cfg.attn_mul : dot / cfg.attn_div;
        scores[s] = sc;
        if (sc > mx) mx = sc;
      }
      float sum = 0.0f;
      for (int s = first; s < len; s++) {
        float e = fe_expf(scores[s] - mx);
        scores[s] = e;
        sum += e;
      }
      float *out = st.att + (size_t)t * hd + h * d;
      for (int i = 0; i < d; i++) out[i] = 0.0f;
      for (int s = first; s < len; s++) {
        v128_t p = wasm_f32x4_splat(scores[s] / sum);
        const float *v = vc + ((size_t)s * kvh + kh) * d;
        for (int i = 0; i < d; i += 4)
          wasm_v128_store(out + i, wasm_f32x4_add(wasm_v128_load(out + i), wasm_f32x4_mul(p, wasm_v128_load(v + i))));
      }
    }
  }
}

/* ---------------------------------------------------------------------------------------------------------------
 * threads: the forward pass hands out jobs (a layer's q/k/v products, its attention, ...), each cut into parts
 * (FE_PARTS_PER_THREAD per thread); every thread, the caller as thread 0 and fe_worker's as 1 .. n-1, claims parts
 * until none is left, and the caller waits until all are done. A thread the system has put aside (a busy machine, a
 * phone's slow cores) holds up only the part it is running: the others take the rest. Which thread runs a part
 * changes nothing in its result (each output element is computed by one part with the same instructions), so any
 * thread count gives the same bits. Workers spin a while for the next job (a decode step hands out about 5 a layer,
 * microseconds apart), then sleep.
 */

enum { JOB_QKV, JOB_ATTENTION, JOB_O, JOB_GATE_UP, JOB_DOWN, JOB_HEAD };

static struct {
  int kind, layer, T, pos;
  Input in; /* the job's matmul input, prepared by the caller */
} job;
static int nthreads = 1; /* threads that take parts: the caller and workers 1 .. nthreads-1 (others stay idle) */
static int score_rows = 1; /* attention scores rows allocated: one per thread, for the most threads used so far */
static int caller_sleeps; /* the caller may sleep while it waits for the workers (not a page's main thread) */
static uint32_t job_gen; /* bumped once per job handed out (and by fe_stop) */
/* the current job's parts: (gen & 0xffff) << 16 | parts << 8 | next part to claim. One word, so that a claim (a
 * compare-and-swap) is of the job the word describes: a worker that slept through jobs cannot claim a part of the
 * next one by a stale count. A claim that succeeds is of the current job, whose description (job) stays as it is
 * until every part is done. */
static uint32_t job_parts;
static uint32_t parts_done; /* parts of the current job finished */
static uint32_t stopping; /* fe_stop was called: workers return */
#define FE_SPINS (1 << 16) /* loads of job_gen before a worker sleeps: about 0.1-1 ms */
#define FE_PARTS_PER_THREAD 4
#define FE_MAX_PARTS 255

static void run_part(int tid, int part, int parts) {
  int l = job.layer, hd = cfg.heads * cfg.head_dim, kvd = cfg.kv_heads * cfg.head_dim, inter = cfg.intermediate;
  switch (job.kind) {
    case JOB_QKV:
      matmul(layer_tensor(l, FE_WQ), &job.in, st.q, hd, 0, part, parts); //                    q [T, H*D]
      matmul(layer_tensor(l, FE_WK), &job.in, st.k, kvd, 0, part, parts); //                   k [T, KV*D]
      matmul(layer_tensor(l, FE_WV), &job.in, st.v, kvd, 0, part, parts); //                   v [T, KV*D]
      break;
    case JOB_ATTENTION:
      attention(l, job.T, job.pos, tid, part, parts); //                                      att [T, H*D]
      break;
    case JOB_O: //                                     x += Wo att (post_norms: xb = Wo att, normed and added after)
      matmul(layer_tensor(l, FE_WO), &job.in, cfg.post_norms ? st.xb : st.x, cfg.hidden, !cfg.post_norms, part, parts);
      break;
    case JOB_GATE_UP: { //                           hg [T, intermediate] = silu(Wgate xn) * (Wup xn) (or gelu_tanh)
      matmul(layer_tensor(l, FE_GATE), &job.in, st.hg, inter, 0, part, parts);
      matmul(layer_tensor(l, FE_UP), &job.in, st.hu, inter, 0, part, parts);
      int a, b; /* this part's rows of both: the same share, so its columns of hg and hu are all its own */
      share(inter, part, parts, &a, &b);
      for (int t = 0; t < job.T; t++) {
        for (int i = a; i < b; i++) {
          size_t k = (size_t)t * inter + i;
          float g = st.hg[k];
          st.hg[k] = (cfg.gelu ? gelu_tanh(g) : g / (1.0f + fe_expf(-g))) * st.hu[k];
        }
      }
      break;
    }
    case JOB_DOWN: //                                                  x += Wdown hb (post_norms: as JOB_O)
      matmul(layer_tensor(l, FE_DOWN), &job.in, cfg.post_norms ? st.xb : st.x, cfg.hidden, !cfg.post_norms, part, parts);
      break;
    case JOB_HEAD:
      matmul(&tensors[FE_SLOT_OUTPUT], &job.in, st.logits, cfg.vocab, 0, part, parts);
      break;
  }
}

/* Claims and runs parts of the job whose word was `w` (as read when the job was seen) until none is left; a job that
 * has since been replaced has none left for this thread. */
static void run_parts(int tid, uint32_t w) {
  int parts = (int)((w >> 8) & 0xffu);
  for (;;) {
    uint32_t cur = fe_load(&job_parts);
    if ((cur >> 8) != (w >> 8) || (int)(cur & 0xffu) >= parts) return; /* another job, or none left */
    if (!fe_cas(&job_parts, cur, cur + 1)) continue;
    run_part(tid, (int)(cur & 0xffu), parts);
    if (fe_add(&parts_done, 1u) == (uint32_t)parts) fe_wake(&parts_done);
  }
}

/* Runs job `kind` on every thread and returns when all its parts are done. */
static void dispatch(int kind) {
  job.kind = kind;
  int n = nthreads;
  if (n == 1) {
    run_part(0, 0, 1);
    return;
  }
  int parts = n * FE_PARTS_PER_THREAD < FE_MAX_PARTS ? n * FE_PARTS_PER_THREAD : FE_MAX_PARTS;
  uint32_t gen = fe_load(&job_gen) + 1u; /* only this thread moves job_gen while the workers run */
  uint32_t w = (gen & 0xffffu) << 16 | (uint32_t)parts << 8;
  fe_store(&parts_done, 0u);
  fe_store(&job_parts, w); /* described before the workers look: they see the new generation after this */
  fe_store(&job_gen, gen);
  fe_wake(&job_gen);
  run_parts(0, w);
  uint32_t done;
  for (int spins = 0; (done = fe_load(&parts_done)) != (uint32_t)parts;) {
    if (++spins < FE_SPINS || !caller_sleeps) fe_pause(); else fe_sleep(&parts_done, done);
  }
}

/* Uses n threads from now on (between forward passes; fewer than the workers started leaves the rest idle, e.g. a
 * decode step on fewer threads than a prompt): the caller and workers 1 .. n-1, which the host has started inside
 * fe_worker. Allocates a scores row per thread. sleeps: the caller's thread may sleep on a wait (a worker, Node; not
 * a browser page's main thread, where it only spins). */
EXPORT(fe_threads) int fe_threads(int32_t n, int32_t sleeps) {
  if (!ready) return FE_ERR_STATE;
#if defined(__wasm__) && !defined(FE_THREADS)
  if (n != 1) return FE_ERR_CONFIG; /* the single-threaded build */
#endif
  if (n < 1 || n > 64) return FE_ERR_ARGS;
  if (n > score_rows) {
    ALLOC(st.scores, (size_t)n * cfg.context);
    score_rows = n;
  }
  fe_store(&nthreads, n);
  caller_sleeps = sleeps != 0;
  return FE_OK;
}

/* A worker's loop: claims parts of each job until fe_stop. Called by the host on its own thread. */
EXPORT(fe_worker) int fe_worker(int32_t tid) {
  uint32_t seen = fe_load(&job_gen);
  for (;;) {
    uint32_t g;
    int spins = 0;
    while ((g = fe_load(&job_gen)) == seen) {
      if (fe_load(&stopping)) return FE_OK;
      if (++spins < FE_SPINS) fe_pause(); else fe_sleep(&job_gen, seen);
    }
    seen = g;
    if (fe_load(&stopping)) return FE_OK;
    if (tid < fe_load(&nthreads)) run_parts(tid, fe_load(&job_parts)); /* set before this job was handed out */
  }
}

/* Ends every worker's fe_worker (after the part in progress, if any). */
EXPORT(fe_stop) void fe_stop(void) {
  fe_store(&stopping, 1u);
  fe_add(&job_gen, 1u);
  fe_wake(&job_gen);
}

/* ---------------------------------------------------------------------------------------------------------------
 * the forward pass
 */

/* ---------------------------------------------------------------------------------------------------------------
 * KV slots: two copies of the cache's first positions kept aside, so that a conversation the next request leaves can
 * come back without its prompt running again (app/engine/kv-session.js decides when). Allocated on first use.
 */

static float *kv_slots[2]; /* each [layers, 2 (k, v), slot_positions, KV*D] */
static int slot_positions;

/* Makes the two slots of `positions` positions each (once; later calls must ask for the same). */
EXPORT(fe_kv_slots) int fe_kv_slots(int32_t positions) {
  if (!ready) return FE_ERR_STATE;
  if (positions < 1 || positions > cfg.context) return FE_ERR_ARGS;
  if (slot_positions) return positions == slot_positions ? FE_OK : FE_ERR_ARGS;
  size_t n = (size_t)cfg.layers * 2 * positions * cfg.kv_heads * cfg.head_dim;
  ALLOC(kv_slots[0], n);
  ALLOC(kv_slots[1], n);
  slot_positions = positions;
  return FE_OK;
}

/* Copies KV cache positions 0 .. n-1 of every layer into slot `slot` (save) or from it back into the cache. */
EXPORT(fe_kv_copy) int fe_kv_copy(int32_t save, int32_t slot, int32_t n) {
  if (!slot_positions) return FE_ERR_STATE;
  if (slot < 0 || slot > 1 || n < 0 || n > slot_positions) return FE_ERR_ARGS;
  size_t kvd = (size_t)cfg.kv_heads * cfg.head_dim, bytes = (size_t)n * kvd * sizeof(float);
  for (int l = 0; l < cfg.layers; l++) {
    float *cache[2] = {st.k_cache + (size_t)l * cfg.context * kvd, st.v_cache + (size_t)l * cfg.context * kvd};
    for (int kv = 0; kv < 2; kv++) {
      float *kept = kv_slots[slot] + ((size_t)l * 2 + kv) * slot_positions * kvd;
      if (save) __builtin_memcpy(kept, cache[kv], bytes); else __builtin_memcpy(cache[kv], kept, bytes);
    }
  }
  return FE_OK;
}

/* post_norms (gemma3): x [T, hidden] += rmsnorm(xb) * w, xb being a block's output (JOB_O, JOB_DOWN). */
static void post_norm(const float *w, int T) {
  for (int t = 0; t < T; t++) {
    float *o = st.xb + (size_t)t * cfg.hidden, *x = st.x + (size_t)t * cfg.hidden;
    rmsnorm(o, o, w, cfg.hidden);
    for (int i = 0; i < cfg.hidden; i++) x[i] += o[i];
  }
}

/* Runs tokens fe_ids()[0 .. n-1] at positions pos .. pos+n-1, filling the KV cache; with `head`, the logits of the
 * last token into fe_logits() (the host skips the head on all but a prompt's last pass). */
EXPORT(fe_forward) int fe_forward(int32_t n, int32_t pos, int32_t head) {
  if (!ready) return FE_ERR_STATE;
  if (n < 1 || n > cfg.max_tokens || pos < 0 || pos + n > cfg.context) return FE_ERR_ARGS;
  for (int i = 0; i < FE_SLOT_LAYER0 + cfg.layers * FE_PER_LAYER; i++) {
    int w = (i - FE_SLOT_LAYER0) % FE_PER_LAYER;
    int optional = i >= FE_SLOT_LAYER0 && ((!cfg.attention_bias && (w == FE_BQ || w == FE_BK || w == FE_BV)) ||
                                           (!cfg.qk_norm && (w == FE_Q_NORM || w == FE_K_NORM)) ||
                                           (!cfg.post_norms && (w == FE_POST_ATTN_NORM || w == FE_POST_FFW_NORM)));
    if (!optional && tensors[i].nchunks == 0) return FE_ERR_STATE;
  }
  int T = n, hidden = cfg.hidden, d = cfg.head_dim, half = d / 2;
  int hd = cfg.heads * d, kvd = cfg.kv_heads * d, inter = cfg.intermediate;

  for (int t = 0; t < T; t++) {  //                                              x = token_embd[ids]   [T, hidden]
    int id = st.ids[t];
    if (id < 0 || id >= cfg.vocab || embed(&tensors[FE_SLOT_TOKEN_EMBD], id, st.x + (size_t)t * hidden)) return FE_ERR_ARGS;
    if (cfg.embedding_scale != 0.0f)  //                                      gemma3: x = token_embd[id] * scale
      for (int i = 0; i < hidden; i++) st.x[(size_t)t * hidden + i] *= cfg.embedding_scale;
  }
  for (int l = 0; l < cfg.layers; l++) {
    // attention: x += Wo attention(rope(Wq xn + bq), rope(Wk xn + bk), Wv xn + bv),   xn = rmsnorm(x) * attn_norm
    //   (qk_norm: rope(qnorm(Wq xn)), rope(knorm(Wk xn)), each head of q and k RMS-normed before rope)
    const float *attn_norm = vec(layer_tensor(l, FE_ATTN_NORM));
    for (int t = 0; t < T; t++) rmsnorm(st.xb + (size_t)t * hidden, st.x + (size_t)t * hidden, attn_norm, hidden);
    job.layer = l, job.T = T, job.pos = pos;
    job.in = prepare(st.xb, T, hidden);
    dispatch(JOB_QKV); //                                                       q [T, H*D], k and v [T, KV*D]
    if (cfg.attention_bias) {
      const float *bq = vec(layer_tensor(l, FE_BQ)), *bk = vec(layer_tensor(l, FE_BK)), *bv = vec(layer_tensor(l, FE_BV));
      for (int t = 0; t < T; t++) {
        for (int i = 0; i < hd; i++) st.q[(size_t)t * hd + i] += bq[i];
        for (int i = 0; i < kvd; i++) st.k[(size_t)t * kvd + i] += bk[i];
        for (int i = 0; i < kvd; i++) st.v[(size_t)t * kvd + i] += bv[i];
      }
    }
    if (cfg.qk_norm) {  //                                             each head of q and k, in place (qwen3)
      const float *qn = vec(layer_tensor(l, FE_Q_NORM)), *kn = vec(layer_tensor(l, FE_K_NORM));
      for (int t = 0; t < T; t++) {
        float *q = st.q + (size_t)t * hd, *k = st.k + (size_t)t * kvd;
        for (int h = 0; h < cfg.heads; h++) rmsnorm(q + h * d, q + h * d, qn, d);
        for (int h = 0; h < cfg.kv_heads; h++) rmsnorm(k + h * d, k + h * d, kn, d);
      }
    }
    const float *cos = st.sliding[l] && st.cos_s ? st.cos_s : st.cos, *sin = st.sliding[l] && st.sin_s ? st.sin_s : st.sin;
    for (int t = 0; t < T; t++) {
      int p = pos + t;
      const float *c = cos + (size_t)p * half, *s = sin + (size_t)p * half;
      rope(st.q + (size_t)t * hd, cfg.heads, c, s);
      rope(st.k + (size_t)t * kvd, cfg.kv_heads, c, s);
      float *kc = st.k_cache + ((size_t)l * cfg.context + p) * kvd, *vc = st.v_cache + ((size_t)l * cfg.context + p) * kvd;
      for (int i = 0; i < kvd; i++) kc[i] = st.k[(size_t)t * kvd + i], vc[i] = st.v[(size_t)t * kvd + i];
    }
    dispatch(JOB_ATTENTION); //                                                               att [T, H*D]
    job.in = prepare(st.att, T, hd);
    dispatch(JOB_O); //                                                                       x += Wo att
    if (cfg.post_norms) post_norm(vec(layer_tensor(l, FE_POST_ATTN_NORM)), T); //         x += rmsnorm(Wo att) * w
    // MLP: x += Wdown (silu(Wgate xn) * (Wup xn)),   xn = rmsnorm(x) * ffn_norm
    const float *ffn_norm = vec(layer_tensor(l, FE_FFN_NORM));
    for (int t = 0; t < T; t++) rmsnorm(st.xb + (size_t)t * hidden, st.x + (size_t)t * hidden, ffn_norm, hidden);
    job.in = prepare(st.xb, T, hidden);
    dispatch(JOB_GATE_UP); //                                         hg [T, intermediate] = silu(gate) * up
    job.in = prepare(st.hg, T, inter);
    dispatch(JOB_DOWN); //                                                                     x += Wdown hb
    if (cfg.post_norms) post_norm(vec(layer_tensor(l, FE_POST_FFW_NORM)), T); //        x += rmsnorm(Wdown hb) * w
  }
  if (head) {  //                                         logits [vocab] = output (rmsnorm(x[T-1]) * output_norm)
    rmsnorm(st.xb, st.x + (size_t)(T - 1) * hidden, vec(&tensors[FE_SLOT_OUTPUT_NORM]), hidden);
    job.T = 1;
    job.in = prepare(st.xb, 1, hidden);
    dispatch(JOB_HEAD);
  }
  return FE_OK;
}

/* ---------------------------------------------------------------------------------------------------------------
 * the pick: argmax.wgsl's definition, on the CPU
 */

static float pick_rest;

/* The largest logit among the tokens fe_mask() allows (use_mask 0: every token), the lowest id on a tie; -1 when
 * none is allowed. fe_pick_rest() then gives r = sum of exp(l - max) over the other allowed tokens, so that the
 * token's log-probability is -log1p(r) (an online softmax, one pass; two -inf maxima count as exp(0) = 1 each, so
 * all -inf gives -log(allowed count), as argmax.wgsl). Logits are finite or -inf. */
EXPORT(fe_pick) int32_t fe_pick(int32_t use_mask) {
  const float *lg = st.logits;
  int32_t best = -1;
  float m = 0.0f, r = 0.0f;
  for (int w = 0; w < (cfg.vocab + 31) / 32; w++) {
    uint32_t bits = use_mask ? st.mask[w] : 0xffffffffu;
    while (bits) {
      int i = w * 32 + __builtin_ctz(bits);
      bits &= bits - 1;
      if (i >= cfg.vocab) break;
      float l = lg[i];
      if (best < 0) {
        best = i, m = l, r = 0.0f;
      } else if (l == m) {
        r += 1.0f;
      } else if (l > m) {
        r = (1.0f + r) * fe_expf(m - l);
        m = l, best = i;
      } else {
        r += fe_expf(l - m);
      }
    }
  }
  pick_rest = r;
  return best;
}

EXPORT(fe_pick_rest) float fe_pick_rest(void) { return pick_rest; }
