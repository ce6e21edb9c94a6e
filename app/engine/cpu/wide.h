/* wide.h: native x86-64 with AVX2 + F16C only (included by platform.h; never in the wasm build): cpu_engine.c's
 * q4, q8 and K-quant row products (row_q4 / row_q8 / row_k45 / row_q6k, for 1 token or 4) on 256-bit vectors, 8
 * lanes instead of 4. The same input (`xp`, each group's values in the q4 order, and its group sums), the same
 * unpacking, the same f32 products and sums, without fused multiply-adds: only the order of the additions differs
 * from the 128-bit kernels (logits differ by ~1e-7 relative, far inside the 1e-3 the tests ask).
 *
 * A q4 group's 4 words, broadcast to both halves: the low half shifted by 8k and the high half by 8k + 4 gives
 * w[2k] | w[2k + 1] of row_q4's unpacking (values {j, 8+j, 16+j, 24+j} for j = 2k, 2k + 1), which line up with
 * xp[8k .. 8k + 7]. A q8 group's 8 words: words 0, 2, 4, 6 (values 8l .. 8l+3) in both halves give w[0] | w[1] and
 * w[2] | w[3] by shifting byte j to the top and back, words 1, 3, 5, 7 give w[4] | w[5] and w[6] | w[7].
 */
#ifndef FIELDLLM_WIDE_H
#define FIELDLLM_WIDE_H

#include <immintrin.h>

#define FE_WIDE 1

static inline float fe_hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* sum over a group of 32 values of w * x: four 8-lane products, summed pairwise */
static inline __m256 fe_dot32x8(__m256 w0, __m256 w1, __m256 w2, __m256 w3, const float *x) {
  __m256 p0 = _mm256_add_ps(_mm256_mul_ps(w0, _mm256_loadu_ps(x)), _mm256_mul_ps(w1, _mm256_loadu_ps(x + 8)));
  __m256 p1 = _mm256_add_ps(_mm256_mul_ps(w2, _mm256_loadu_ps(x + 16)), _mm256_mul_ps(w3, _mm256_loadu_ps(x + 24)));
  return _mm256_add_ps(p0, p1);
}

/* out[t] = row . x[t] for NT tokens (1: decode, 4: prompts) of one q4 row: `row` its words, `sc` its scale words
 * (f16 scale | f16 min << 16), `xp` the first token's permuted input (the next ones `cols` floats apart), `gs` its
 * group sums (the next ones `groups` apart), `groups` = cols / 32. A group is unpacked once for all NT tokens. */
__attribute__((always_inline)) static inline void fe_wide_q4(const uint32_t *row, const uint32_t *sc, const float *xp,
                                                            const float *gs, int groups, int NT, float *out) {
  const __m256i s0 = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4), s1 = _mm256_setr_epi32(8, 8, 8, 8, 12, 12, 12, 12);
  const __m256i s2 = _mm256_setr_epi32(16, 16, 16, 16, 20, 20, 20, 20);
  const __m256i s3 = _mm256_setr_epi32(24, 24, 24, 24, 28, 28, 28, 28);
  const __m256i low4 = _mm256_set1_epi32(15);
  const __m128i halves = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  const size_t cols = (size_t)groups * 32;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  __m128 macc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
  float tail[4] = {0, 0, 0, 0};
  int g = 0;
#define FE_Q4_GROUP(gi, scale)                                                                                      \
  do {                                                                                                              \
    __m256i wv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(row + 4 * (gi))));                  \
    __m256 w0 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(wv, s0), low4));                            \
    __m256 w1 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(wv, s1), low4));                            \
    __m256 w2 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(wv, s2), low4));                            \
    __m256 w3 = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(wv, s3), low4));                            \
    for (int t = 0; t < NT; t++)                                                                                    \
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(fe_dot32x8(w0, w1, w2, w3, xp + t * cols + (gi) * 32), (scale))); \
  } while (0)
  for (; g + 4 <= groups; g += 4) {
    __m128i sw = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(sc + g)), halves); /* 4 scales | 4 minimums */
    __m128 s = _mm_cvtph_ps(sw), m = _mm_cvtph_ps(_mm_unpackhi_epi64(sw, sw));
    for (int t = 0; t < NT; t++) macc[t] = _mm_add_ps(macc[t], _mm_mul_ps(m, _mm_loadu_ps(gs + t * groups + g)));
    __m256 s8 = _mm256_set_m128(s, s);
    FE_Q4_GROUP(g, _mm256_permute_ps(s8, 0x00));
    FE_Q4_GROUP(g + 1, _mm256_permute_ps(s8, 0x55));
    FE_Q4_GROUP(g + 2, _mm256_permute_ps(s8, 0xaa));
    FE_Q4_GROUP(g + 3, _mm256_permute_ps(s8, 0xff));
  }
  for (; g < groups; g++) {
    __m128 sm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)sc[g])); /* scale, minimum */
    FE_Q4_GROUP(g, _mm256_set1_ps(_mm_cvtss_f32(sm)));
    for (int t = 0; t < NT; t++) tail[t] += _mm_cvtss_f32(_mm_movehdup_ps(sm)) * gs[t * groups + g];
  }
#undef FE_Q4_GROUP
  for (int t = 0; t < NT; t++) {
    __m128 mh = _mm_add_ps(macc[t], _mm_movehl_ps(macc[t], macc[t]));
    out[t] = fe_hsum8(acc[t]) + (_mm_cvtss_f32(_mm_add_ss(mh, _mm_movehdup_ps(mh))) + tail[t]);
  }
}

/* The same for one q8 row: `row` its i8 values, `sc` its f16 scales. */
__attribute__((always_inline)) static inline void fe_wide_q8(const int8_t *row, const uint16_t *sc, const float *xp,
                                                            int groups, int NT, float *out) {
  const __m256i lo = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6), hi = _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
  const __m256i up01 = _mm256_setr_epi32(24, 24, 24, 24, 16, 16, 16, 16);
  const __m256i up23 = _mm256_setr_epi32(8, 8, 8, 8, 0, 0, 0, 0);
  const size_t cols = (size_t)groups * 32;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int g = 0;
#define FE_Q8_GROUP(gi, scale)                                                                                      \
  do {                                                                                                              \
    __m256i v = _mm256_loadu_si256((const __m256i *)(row + (gi) * 32));                                            \
    __m256i l = _mm256_permutevar8x32_epi32(v, lo), h = _mm256_permutevar8x32_epi32(v, hi);                        \
    __m256 w0 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_sllv_epi32(l, up01), 24));                             \
    __m256 w1 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_sllv_epi32(l, up23), 24));                             \
    __m256 w2 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_sllv_epi32(h, up01), 24));                             \
    __m256 w3 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_sllv_epi32(h, up23), 24));                             \
    for (int t = 0; t < NT; t++)                                                                                    \
      acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(fe_dot32x8(w0, w1, w2, w3, xp + t * cols + (gi) * 32), (scale))); \
  } while (0)
  for (; g + 4 <= groups; g += 4) {
    __m128 s = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(sc + g)));
    __m256 s8 = _mm256_set_m128(s, s);
    FE_Q8_GROUP(g, _mm256_permute_ps(s8, 0x00));
    FE_Q8_GROUP(g + 1, _mm256_permute_ps(s8, 0x55));
    FE_Q8_GROUP(g + 2, _mm256_permute_ps(s8, 0xaa));
    FE_Q8_GROUP(g + 3, _mm256_permute_ps(s8, 0xff));
  }
  for (; g < groups; g++) FE_Q8_GROUP(g, _mm256_set1_ps(_mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(sc[g])))));
#undef FE_Q8_GROUP
  for (int t = 0; t < NT; t++) out[t] = fe_hsum8(acc[t]);
}

/* K-quants (cpu_engine.c row_k45 / row_q6k) on 8 lanes: the codes' low 4 bits unpacked as fe_wide_q4 does (vector i
 * = w[2i] | w[2i + 1]), the high bits of q5k / q6k taken per lane from a vector of the group's qhigh words shifted as
 * the 128-bit kernels' hb, then by 2i | 2i + 1 (q5k) or 4i | 4i + 2 (q6k). Each super-block's scales and minimums are
 * decoded once (in scalar, the same f32 products as row_k45 / row_q6k). `sup` the row's super words, `high` its qhigh
 * words, `supers` = cols / 256. */
__attribute__((always_inline)) static inline void fe_wide_k45(const uint32_t *row, const uint32_t *sup,
                                                             const uint32_t *high, const float *xp, const float *gs,
                                                             int supers, int NT, int q5, float *out) {
  const __m256i sh[4] = {_mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4), _mm256_setr_epi32(8, 8, 8, 8, 12, 12, 12, 12),
                         _mm256_setr_epi32(16, 16, 16, 16, 20, 20, 20, 20),
                         _mm256_setr_epi32(24, 24, 24, 24, 28, 28, 28, 28)};
  const __m256i hs[4] = {_mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3),
                         _mm256_setr_epi32(4, 4, 4, 4, 5, 5, 5, 5), _mm256_setr_epi32(6, 6, 6, 6, 7, 7, 7, 7)};
  const __m256i low4 = _mm256_set1_epi32(15), bit4 = _mm256_set1_epi32(16);
  const size_t cols = (size_t)supers * 256, groups = (size_t)supers * 8;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  __m256 macc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int s = 0; s < supers; s++) {
    const uint32_t *hd = sup + 5 * s;
    float d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)(hd[0] & 0xffffu))));
    float dmin = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)(hd[0] >> 16))));
    float scale[8], mins[8];
    for (int j = 0; j < 8; j++) {
      scale[j] = d * (float)((hd[1 + j / 4] >> (8 * (j % 4))) & 255u);
      mins[j] = dmin * (float)((hd[3 + j / 4] >> (8 * (j % 4))) & 255u);
    }
    __m256 mv = _mm256_loadu_ps(mins);
    for (int t = 0; t < NT; t++) macc[t] = _mm256_add_ps(macc[t], _mm256_mul_ps(mv, _mm256_loadu_ps(gs + t * groups + 8 * s)));
    for (int k = 0; k < 8; k++) {
      int g = 8 * s + k;
      __m256i wv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(row + 4 * g)));
      __m256 w[4];
      if (q5) {
        uint32_t h = high[g];
        __m256i hb = _mm256_broadcastsi128_si256(
            _mm_setr_epi32((int)(h << 4), (int)(h >> 4), (int)(h >> 12), (int)(h >> 20)));
        for (int i = 0; i < 4; i++)
          w[i] = _mm256_cvtepi32_ps(_mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi32(wv, sh[i]), low4),
                                                    _mm256_and_si256(_mm256_srlv_epi32(hb, hs[i]), bit4)));
      } else {
        for (int i = 0; i < 4; i++) w[i] = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(wv, sh[i]), low4));
      }
      __m256 sk = _mm256_set1_ps(scale[k]);
      for (int t = 0; t < NT; t++)
        acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(fe_dot32x8(w[0], w[1], w[2], w[3], xp + t * cols + g * 32), sk));
    }
  }
  for (int t = 0; t < NT; t++) out[t] = fe_hsum8(acc[t]) - fe_hsum8(macc[t]);
}

/* q6k: a group's two sub-block scales a, b as (a, a, b, b, a, a, b, b) (lanes 0-1 of each half are values 0..15 of
 * the group), the codes' bits 4-5 from the group's two qhigh words, 32 taken off the integers. */
__attribute__((always_inline)) static inline void fe_wide_q6k(const uint32_t *row, const uint32_t *sup,
                                                             const uint32_t *high, const float *xp, int supers,
                                                             int NT, float *out) {
  const __m256i sh[4] = {_mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4), _mm256_setr_epi32(8, 8, 8, 8, 12, 12, 12, 12),
                         _mm256_setr_epi32(16, 16, 16, 16, 20, 20, 20, 20),
                         _mm256_setr_epi32(24, 24, 24, 24, 28, 28, 28, 28)};
  const __m256i hs[4] = {_mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2), _mm256_setr_epi32(4, 4, 4, 4, 6, 6, 6, 6),
                         _mm256_setr_epi32(8, 8, 8, 8, 10, 10, 10, 10),
                         _mm256_setr_epi32(12, 12, 12, 12, 14, 14, 14, 14)};
  const __m256i low4 = _mm256_set1_epi32(15), bits45 = _mm256_set1_epi32(0x30), off = _mm256_set1_epi32(32);
  const size_t cols = (size_t)supers * 256;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int s = 0; s < supers; s++) {
    const uint32_t *hd = sup + 5 * s;
    float d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)(hd[0] & 0xffffu))));
    float scale[16];
    for (int j = 0; j < 16; j++) scale[j] = d * (float)(int8_t)(uint8_t)(hd[1 + j / 4] >> (8 * (j % 4)));
    for (int k = 0; k < 8; k++) {
      int g = 8 * s + k;
      __m256i wv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(row + 4 * g)));
      uint32_t h0 = high[2 * g], h1 = high[2 * g + 1];
      __m256i hb = _mm256_broadcastsi128_si256(
          _mm_setr_epi32((int)(h0 << 4), (int)(h0 >> 12), (int)(h1 << 4), (int)(h1 >> 12)));
      __m256 w[4];
      for (int i = 0; i < 4; i++)
        w[i] = _mm256_cvtepi32_ps(_mm256_sub_epi32(
            _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi32(wv, sh[i]), low4),
                            _mm256_and_si256(_mm256_srlv_epi32(hb, hs[i]), bits45)),
            off));
      float a = scale[2 * k], b = scale[2 * k + 1];
      __m256 sk = _mm256_setr_ps(a, a, b, b, a, a, b, b);
      for (int t = 0; t < NT; t++)
        acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(fe_dot32x8(w[0], w[1], w[2], w[3], xp + t * cols + g * 32), sk));
    }
  }
  for (int t = 0; t < NT; t++) out[t] = fe_hsum8(acc[t]);
}

#endif
