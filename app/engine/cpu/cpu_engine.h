/* cpu_engine.h: the CPU engine's interface (C11, no libc), the functions model.js calls on the WebAssembly build.
 *
 * One engine per module instance: the config, the weights and the run state are globals of this instance (as in
 * llama2.c's run.c: config -> weights -> run state, allocated once -> forward). The host (app/engine/cpu/model.js):
 *   1. fe_init(config, context, max_tokens)         allocates the run state; returns FE_OK or an FE_ERR_* code
 *   2. fe_alloc(bytes) for each weight shard, copies the shard's bytes there unchanged (the planes of
 *      docs/FORMAT.md: q4 / q8 / f32 / q4k / q5k / q6k, no repacking), then fe_tensor / fe_chunk point each tensor
 *      at its planes
 *   3. fills fe_rope_cos() / fe_rope_sin() (f32[context, head_dim / 2], cos and sin of pos * inv_freq)
 *   4. per call: writes ids into fe_ids(), fe_forward(n, pos, head) -> logits of the last token in fe_logits(),
 *      fe_pick(mask) -> the masked argmax (and fe_pick_rest() for its log-probability)
 * Threads (optional; cpu_engine_mt.wasm, or any native build): after step 3 the host starts n - 1 threads that each
 * call fe_worker(1 .. n-1) (it returns after fe_stop), then fe_threads(n, sleeps); every fe_forward then runs on all
 * n, with the same results as on one.
 * Pointers are byte offsets in the module's memory (wasm32: u32; JS reads them with `>>> 0`).
 */
#ifndef FIELDLLM_CPU_ENGINE_H
#define FIELDLLM_CPU_ENGINE_H

#include <stdint.h>

/* storage types (docs/FORMAT.md); q4k / q5k / q6k: llama.cpp's K-quants, in super-blocks of 256 values of a row */
enum { FE_F32 = 0, FE_Q8 = 1, FE_Q4 = 2, FE_Q4K = 3, FE_Q5K = 4, FE_Q6K = 5 };

/* tensor slots: the model's tensors by position; layer i's start at FE_SLOT_LAYER0 + i * FE_PER_LAYER */
enum {
  FE_SLOT_TOKEN_EMBD = 0, /* [vocab, hidden] */
  FE_SLOT_OUTPUT_NORM = 1, /* [hidden] f32 */
  FE_SLOT_OUTPUT = 2, /* [vocab, hidden]; the host points it at token_embd's planes when tied */
  FE_SLOT_LAYER0 = 3,
};
enum {
  FE_ATTN_NORM = 0, /* [hidden] f32 */
  FE_WQ = 1, /* [H*D, hidden] */
  FE_WK = 2, /* [KV*D, hidden] */
  FE_WV = 3, /* [KV*D, hidden] */
  FE_BQ = 4, /* [H*D] f32 (qwen2 only) */
  FE_BK = 5, /* [KV*D] f32 */
  FE_BV = 6, /* [KV*D] f32 */
  FE_WO = 7, /* [hidden, H*D] */
  FE_FFN_NORM = 8, /* [hidden] f32 */
  FE_GATE = 9, /* [intermediate, hidden] */
  FE_UP = 10, /* [intermediate, hidden] */
  FE_DOWN = 11, /* [hidden, intermediate] */
  FE_Q_NORM = 12, /* [D] f32 (qk_norm only: qwen3's RMSNorm of each q head before RoPE) */
  FE_K_NORM = 13, /* [D] f32 (each k head) */
  FE_POST_ATTN_NORM = 14, /* [hidden] f32 (post_norms only: gemma3's RMSNorm of the attention output) */
  FE_POST_FFW_NORM = 15, /* [hidden] f32 (the MLP output's) */
  FE_PER_LAYER = 16,
};
#define FE_MAX_LAYERS 256

/* return codes */
enum {
  FE_OK = 0,
  FE_ERR_CONFIG = 1, /* a config value this engine cannot run (see fe_init) */
  FE_ERR_MEMORY = 2, /* memory.grow failed: the heap cannot hold the model */
  FE_ERR_STATE = 3, /* called out of order (no fe_init, or a tensor slot never set) */
  FE_ERR_ARGS = 4, /* bad arguments (slot, chunk, token count, positions, token id) */
};

void *fe_alloc(uint32_t bytes);
int fe_init(int32_t vocab, int32_t hidden, int32_t intermediate, int32_t layers, int32_t heads, int32_t kv_heads,
            int32_t head_dim, float rms_eps, float attn_scale_div, int32_t rope_interleaved, int32_t attention_bias,
            int32_t qk_norm, int32_t context, int32_t max_tokens);
/* optional, right after fe_init (absent: the llama behaviour; gemma3's config keys, docs/FORMAT.md):
 * embedding_scale (0: none) multiplies the embedding row on lookup; post_norms: the attention and MLP outputs are
 * RMS-normed (FE_POST_*_NORM) before their residual adds; gelu_tanh: the MLP is down(gelu_tanh(gate) * up);
 * attention_scale (0: divide by attn_div) multiplies q.k; sliding_window (0: none) with fe_layer_sliding()[layer] = 1
 * for the layers that attend to the last sliding_window positions only; sliding_rope: those layers rotate with their
 * own tables fe_rope_cos_sliding() / fe_rope_sin_sliding() (written by the host as fe_rope_cos / fe_rope_sin) */
int fe_options(float embedding_scale, int32_t post_norms, int32_t gelu_tanh, float attention_scale,
               int32_t sliding_window, int32_t sliding_rope);
int32_t *fe_layer_sliding(void); /* [layers], 0 until the host writes 1 for a sliding layer */
float *fe_rope_cos_sliding(void);
float *fe_rope_sin_sliding(void);
int fe_tensor(int32_t slot, int32_t storage, int32_t rows, int32_t cols, int32_t nchunks);
int fe_chunk(int32_t slot, int32_t index, int32_t row0, int32_t row1, const void *qweight_or_data,
             const void *scales_or_super, const void *qhigh); /* qhigh: q5k / q6k only, else 0 */
int fe_matmul(int32_t slot, int32_t T, const float *x, float *y); /* y [T, rows] = x [T, cols] W^T (tests) */
float *fe_rope_cos(void);
float *fe_rope_sin(void);
int32_t *fe_ids(void);
float *fe_logits(void);
uint32_t *fe_mask(void);
int fe_forward(int32_t n, int32_t pos, int32_t head);
int fe_kv_slots(int32_t positions); /* two slots of KV positions kept aside (allocated once) */
int fe_kv_copy(int32_t save, int32_t slot, int32_t n); /* cache positions 0..n-1 into slot (save) or back */
int32_t fe_pick(int32_t use_mask);
float fe_pick_rest(void);
int fe_threads(int32_t n, int32_t sleeps); /* sleeps: the calling thread may block on a wait (0 on a page's main thread) */
int fe_worker(int32_t tid); /* a worker thread's loop, tid 1 .. n-1 */
void fe_stop(void); /* ends every fe_worker */
uintptr_t fe_heap_end(void); /* wasm32: the heap's end; native: bytes allocated */
void fe_release(void); /* native only (platform.h): frees every fe_alloc block; the last call */

#endif
