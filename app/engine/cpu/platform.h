/* platform.h: what cpu_engine.c needs from its target, so that the same C builds for wasm32 + SIMD128
 * (scripts/build_wasm.sh) and natively for x86-64 and arm64 (app/native/build.py, a shared library for ctypes):
 *
 *   EXPORT(name)     a function the host calls: wasm export_name, or default visibility in the shared library
 *   v128_t, wasm_*   the SIMD128 intrinsics cpu_engine.c uses, with wasm_simd128.h's names and semantics. Natively
 *                    they are GCC / clang vector extensions (128-bit: SSE2..AVX2 encodings on x86-64, NEON on arm64,
 *                    as -march allows); every lane op is the IEEE one, so a native build computes the same bits as
 *                    the WebAssembly build (both compiled with -ffp-contract=off), except on x86-64 with AVX2 + F16C,
 *                    where wide.h's 8-lane row products add in another order (FE_WIDE; -DFE_NO_WIDE turns it off).
 *                    A change to row_q4 / row_q8 / row_k45 / row_q6k in cpu_engine.c must be made in wide.h too
 *   fe_alloc         64-byte aligned zeroed memory that lives as long as the instance: a bump allocator over
 *                    memory.grow on wasm32; natively aligned_alloc, each block remembered so that fe_release() frees
 *                    them all
 *   fe_heap_end      wasm32: the end of the heap in use; natively: the bytes fe_alloc has handed out
 *
 * Adding an intrinsic: use wasm_simd128.h's name and signature, and add its native definition below (a test builds
 * both: tests/native/test_native_engine.py and tests/js/cpu-engine.test.js).
 */
#ifndef FIELDLLM_PLATFORM_H
#define FIELDLLM_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#if defined(__wasm__)

#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

#define FE_PAGE 65536u
extern unsigned char __heap_base;
static uint64_t heap_top; /* first free byte; 0 before the first fe_alloc */

/* 64-byte aligned bytes from a bump allocator (nothing is ever freed: a model lives as long as its instance);
 * grows the memory as needed. Returns 0 when the memory cannot grow (the host reports FE_ERR_MEMORY). */
EXPORT(fe_alloc) void *fe_alloc(uint32_t bytes) {
  if (!heap_top) heap_top = (uint64_t)(uintptr_t)&__heap_base;
  uint64_t p = (heap_top + 63) & ~(uint64_t)63;
  uint64_t end = p + bytes;
  uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * FE_PAGE;
  if (end > 0xffffffffull) return 0;
  if (end > have) {
    uint64_t pages = (end - have + FE_PAGE - 1) / FE_PAGE;
    if (__builtin_wasm_memory_grow(0, (size_t)pages) == (size_t)-1) return 0;
  }
  heap_top = end;
  return (void *)(uintptr_t)p;
}

/* The end of the heap in use (bytes): what the host reports as the heap a model needs. */
EXPORT(fe_heap_end) uintptr_t fe_heap_end(void) { return (uintptr_t)heap_top; }

#else /* native: GCC or clang, any target with 128-bit vectors (x86-64, arm64) */

#if !defined(__GNUC__)
#error "cpu_engine.c needs GCC or clang (vector extensions) for a native build"
#endif

#define EXPORT(name) __attribute__((visibility("default")))

void *aligned_alloc(size_t alignment, size_t size); /* <stdlib.h>'s, declared here to keep the includes to two */
void free(void *ptr);
void *realloc(void *ptr, size_t size);

static void **alloc_blocks; /* every block fe_alloc returned, for fe_release */
static size_t alloc_count, alloc_cap;
static uint64_t alloc_bytes;

/* 64-byte aligned zeroed bytes (the block is rounded up to 64 bytes, as aligned_alloc asks); 0 when it fails. */
EXPORT(fe_alloc) void *fe_alloc(uint32_t bytes) {
  if (alloc_count == alloc_cap) {
    size_t cap = alloc_cap ? 2 * alloc_cap : 64;
    void **blocks = (void **)realloc(alloc_blocks, cap * sizeof(void *));
    if (!blocks) return 0;
    alloc_blocks = blocks, alloc_cap = cap;
  }
  size_t size = ((size_t)bytes + 63) & ~(size_t)63;
  void *p = aligned_alloc(64, size ? size : 64);
  if (!p) return 0;
  __builtin_memset(p, 0, size); /* zeroed, as fresh wasm memory is */
  alloc_blocks[alloc_count++] = p;
  alloc_bytes += size;
  return p;
}

/* Bytes handed out by fe_alloc (the native counterpart of the wasm heap's end). */
EXPORT(fe_heap_end) uintptr_t fe_heap_end(void) { return (uintptr_t)alloc_bytes; }

/* Frees every block fe_alloc returned. Native only: the host calls it last, before it unloads its copy of the
 * library (one copy per model: the engine's state is this library's globals); nothing may be called after it. */
EXPORT(fe_release) void fe_release(void) {
  for (size_t i = 0; i < alloc_count; i++) free(alloc_blocks[i]);
  free(alloc_blocks);
  alloc_blocks = 0, alloc_count = alloc_cap = 0, alloc_bytes = 0;
}

/* SIMD128 as vector extensions. v128_t is i32x4, as in wasm_simd128.h; casts between these types are bit casts. */
typedef int32_t v128_t __attribute__((vector_size(16), aligned(16)));
typedef int32_t fe_i32x4_u __attribute__((vector_size(16), aligned(1), may_alias)); /* any address, any type */
typedef uint32_t fe_u32x4 __attribute__((vector_size(16)));
typedef float fe_f32x4 __attribute__((vector_size(16)));
typedef uint16_t fe_u16x8 __attribute__((vector_size(16)));
typedef int64_t fe_i64x2 __attribute__((vector_size(16)));

#if defined(__clang__) || __GNUC__ >= 12
#define FE_SHUFFLE(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#define FE_SHUFFLE(a, b, c0, c1, c2, c3) __builtin_shuffle((a), (b), (v128_t){(c0), (c1), (c2), (c3)})
#endif

#define FE_INLINE static inline __attribute__((always_inline))

FE_INLINE v128_t wasm_v128_load(const void *p) { return (v128_t)(*(const fe_i32x4_u *)p); }
FE_INLINE void wasm_v128_store(void *p, v128_t v) { *(fe_i32x4_u *)p = v; }
FE_INLINE v128_t wasm_v128_load64_zero(const void *p) {
  int64_t lo;
  __builtin_memcpy(&lo, p, 8);
  return (v128_t)(fe_i64x2){lo, 0};
}
FE_INLINE v128_t wasm_v128_and(v128_t a, v128_t b) { return a & b; }
FE_INLINE v128_t wasm_v128_or(v128_t a, v128_t b) { return a | b; }
FE_INLINE v128_t wasm_i32x4_splat(int32_t x) { return (v128_t){x, x, x, x}; }
FE_INLINE v128_t wasm_i32x4_make(int32_t a, int32_t b, int32_t c, int32_t d) { return (v128_t){a, b, c, d}; }
FE_INLINE v128_t wasm_i32x4_sub(v128_t a, v128_t b) { return (v128_t)((fe_u32x4)a - (fe_u32x4)b); }
FE_INLINE v128_t wasm_f32x4_splat(float x) { return (v128_t)(fe_f32x4){x, x, x, x}; }
FE_INLINE float wasm_f32x4_extract_lane_(v128_t v, int i) { return ((fe_f32x4)v)[i]; }
#define wasm_f32x4_extract_lane(v, i) wasm_f32x4_extract_lane_((v), (i))
FE_INLINE v128_t wasm_f32x4_add(v128_t a, v128_t b) { return (v128_t)((fe_f32x4)a + (fe_f32x4)b); }
FE_INLINE v128_t wasm_f32x4_mul(v128_t a, v128_t b) { return (v128_t)((fe_f32x4)a * (fe_f32x4)b); }
FE_INLINE v128_t wasm_f32x4_convert_i32x4(v128_t a) { return (v128_t)__builtin_convertvector(a, fe_f32x4); }
/* shifts: wasm takes the count modulo 32; cpu_engine.c's counts are constants in 1..31 */
FE_INLINE v128_t wasm_i32x4_shl(v128_t a, uint32_t n) { return (v128_t)((fe_u32x4)a << (n & 31)); }
FE_INLINE v128_t wasm_i32x4_shr(v128_t a, uint32_t n) { return a >> (int32_t)(n & 31); }
FE_INLINE v128_t wasm_u32x4_shr(v128_t a, uint32_t n) { return (v128_t)((fe_u32x4)a >> (n & 31)); }
FE_INLINE v128_t wasm_u32x4_extend_low_u16x8(v128_t a) {
  fe_u16x8 h = (fe_u16x8)a;
  return (v128_t){h[0], h[1], h[2], h[3]};
}
#define wasm_i32x4_shuffle(a, b, c0, c1, c2, c3) ((v128_t)FE_SHUFFLE((v128_t)(a), (v128_t)(b), c0, c1, c2, c3))

/* x86-64 with AVX2 and F16C (what -march=native gives on most x86 servers since 2013): the decode step's row
 * products on 256-bit vectors (wide.h; FE_WIDE tells cpu_engine.c). -DFE_NO_WIDE builds the 128-bit ones only. */
#if defined(__x86_64__) && defined(__AVX2__) && defined(__F16C__) && !defined(FE_NO_WIDE)
#include "wide.h"
#endif

#endif /* native */

/* Threads (cpu_engine.c's dispatch): the host starts the workers (Web Workers over one shared memory on wasm32,
 * built with -DFE_THREADS; natively any thread that calls fe_worker), so all this needs is atomics and a way to
 * sleep on a word:
 *   fe_load(p) / fe_store(p, v) / fe_add(p, v)   sequentially consistent on a u32 (fe_add returns the new value)
 *   fe_cas(p, expected, v)                       *p = v if *p == expected; whether it was (sequentially consistent)
 *   fe_sleep(p, seen)                            sleep while *p == seen (may return early: callers re-check)
 *   fe_wake(p)                                   wake every sleeper on p
 *   fe_pause()                                   a spin-loop hint
 * In the single-threaded wasm build (no atomics feature) clang lowers the atomic builtins to plain loads and stores,
 * and nothing ever sleeps. */
#define fe_load(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define fe_store(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define fe_add(p, v) __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
static inline int fe_cas(uint32_t *p, uint32_t expected, uint32_t v) {
  return __atomic_compare_exchange_n(p, &expected, v, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

#if defined(__wasm__) && defined(FE_THREADS)
static inline void fe_sleep(uint32_t *p, uint32_t seen) {
  __builtin_wasm_memory_atomic_wait32((int32_t *)p, (int32_t)seen, -1);
}
static inline void fe_wake(uint32_t *p) { __builtin_wasm_memory_atomic_notify((int32_t *)p, 0xffffffffu); }
static inline void fe_pause(void) {}
#elif defined(__wasm__)
static inline void fe_sleep(uint32_t *p, uint32_t seen) { (void)p, (void)seen; }
static inline void fe_wake(uint32_t *p) { (void)p; }
static inline void fe_pause(void) {}
#else /* native */
#if defined(__linux__) && (defined(__x86_64__) || defined(__aarch64__))
/* a futex: an idle worker of the native library sleeps in the kernel instead of spinning on sched_yield (a server
 * waits between requests for minutes); fe_wake makes the system call only while someone sleeps (seq_cst on both
 * sides: a sleeper counted after the waker looked finds *p changed, and the futex returns at once) */
long syscall(long number, ...); /* <unistd.h>'s */
#if defined(__x86_64__)
#define FE_SYS_FUTEX_NR 202L
#else
#define FE_SYS_FUTEX_NR 98L
#endif
static uint32_t fe_sleepers;
static inline void fe_sleep(uint32_t *p, uint32_t seen) {
  fe_add(&fe_sleepers, 1u);
  syscall(FE_SYS_FUTEX_NR, p, 128 /* FUTEX_WAIT_PRIVATE */, seen, (void *)0, (void *)0, 0);
  fe_add(&fe_sleepers, (uint32_t)-1);
}
static inline void fe_wake(uint32_t *p) {
  if (fe_load(&fe_sleepers))
    syscall(FE_SYS_FUTEX_NR, p, 129 /* FUTEX_WAKE_PRIVATE */, 0x7fffffff, (void *)0, (void *)0, 0);
}
#else
int sched_yield(void); /* <sched.h>'s */
static inline void fe_sleep(uint32_t *p, uint32_t seen) {
  if (fe_load(p) == seen) sched_yield();
}
static inline void fe_wake(uint32_t *p) { (void)p; }
#endif
#if defined(__x86_64__) || defined(__i386__)
static inline void fe_pause(void) { __builtin_ia32_pause(); }
#else
static inline void fe_pause(void) {}
#endif
#endif

#endif
